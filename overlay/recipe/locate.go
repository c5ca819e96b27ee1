package recipe

import (
	"strconv"
	"strings"
)

// locator finds the line of a key in recipe text. The TOML decoder reports
// lines only for syntax errors, and validation messages are far more useful
// with a line, so this scans the (already well-formed) text: table headers
// set the current table, and "key =" lines match within it.
type locator struct {
	lines []string
}

func newLocator(data []byte) *locator {
	return &locator{lines: strings.Split(string(data), "\n")}
}

// line returns the 1-based line of key (a table path ending in a key, or a
// table alone), or 0 when it cannot be found.
func (l *locator) line(key []string) int {
	if len(key) == 0 {
		return 0
	}
	table := ""
	for i, raw := range l.lines {
		s := strings.TrimSpace(raw)
		if strings.HasPrefix(s, "[") {
			table = strings.Trim(strings.TrimSpace(strings.SplitN(s, "#", 2)[0]), "[] ")
			if table == strings.Join(key, ".") {
				return i + 1
			}
			continue
		}
		eq := strings.Index(s, "=")
		if eq < 0 {
			continue
		}
		name := unquoteKey(strings.TrimSpace(s[:eq]))
		full := name
		if table != "" {
			full = table + "." + name
		}
		if full == strings.Join(key, ".") || (table == "" && name == strings.Join(key, ".")) {
			return i + 1
		}
	}
	return 0
}

func unquoteKey(k string) string {
	if len(k) >= 2 && (k[0] == '"' || k[0] == '\'') && k[len(k)-1] == k[0] {
		if k[0] == '\'' {
			return k[1 : len(k)-1]
		}
		if u, err := strconv.Unquote(k); err == nil {
			return u
		}
	}
	return k
}
