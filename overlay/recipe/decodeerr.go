package recipe

import (
	"regexp"
	"strconv"
)

// The TOML decoder reports a value of the wrong type as a plain error
// whose text carries the line and key, in Go's type names. It is turned
// into a Problem so it reads like every other recipe message.
var (
	decodeAt  = regexp.MustCompile(`^toml: line (\d+) \(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)
	wrongType = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
	notATable = regexp.MustCompile(`^type mismatch for .+: expected table but found (.+)$`)
)

// typeWords names the decoder's types (Go's for values, its own for
// destinations) the way the recipe documentation does.
var typeWords = map[string]string{
	"string": "a string", "int64": "an integer", "integer": "an integer",
	"float64": "a number", "float": "a number",
	"bool": "a boolean (true or false)", "boolean": "a boolean (true or false)",
	"map": "a table", "map[string]any": "a table",
	"slice": "an array", "[]any": "an array", "[]map[string]any": "an array of tables",
	"time.Time": "a date",
}

func typeWord(s string) string {
	if w, ok := typeWords[s]; ok {
		return w
	}
	return s
}

// decodeProblem explains a decoder error; ok is false when its text has
// no line and key to go by.
func decodeProblem(err error) (Problem, bool) {
	m := decodeAt.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{}, false
	}
	line, _ := strconv.Atoi(m[1])
	key, _ := strconv.Unquote(`"` + m[2] + `"`)
	msg := m[3]
	if t := wrongType.FindStringSubmatch(msg); t != nil {
		msg = "expected " + typeWord(t[2]) + ", found " + typeWord(t[1])
	} else if t := notATable.FindStringSubmatch(msg); t != nil {
		msg = "expected a table, found " + typeWord(t[1])
	}
	return Problem{Line: line, Msg: key + ": " + msg + "; see docs/recipe.md for the form of each key"}, true
}
