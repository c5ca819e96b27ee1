package fusefs

import (
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// UmountCommand is the command that unmounts mountpoint, ready to paste
// into a shell from any folder: the path absolute and quoted.
func UmountCommand(mountpoint string) string {
	if abs, err := filepath.Abs(mountpoint); err == nil {
		mountpoint = abs
	}
	return "fledge umount " + ShellQuote(mountpoint)
}

// ShellQuote quotes s for a POSIX shell where it needs it, for the
// commands messages suggest: in single quotes, or, when it holds
// characters a terminal would not show as they are, in bash's $'…' with
// those escaped, so a message stays one line and sends no control
// sequence.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, unsafeInShell) < 0 {
		return s
	}
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	q := strconv.Quote(s)
	return "$'" + strings.ReplaceAll(q[1:len(q)-1], "'", `\'`) + "'"
}

// unsafeInShell reports a character a shell word cannot hold unquoted.
func unsafeInShell(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("_@%+=:,./-", r)
}
