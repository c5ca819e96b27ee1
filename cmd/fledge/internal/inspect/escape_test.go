package inspect

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/bin/busybox", "/bin/busybox"},
		{"/usr/share/café", "/usr/share/café"},
		{"/a b", "/a b"},
		{"/evil\x1b[2J", `/evil\x1b[2J`},
		{"/two\nlines", `/two\nlines`},
		{"/tab\there\rcr", `/tab\there\rcr`},
		{"/del\x7f", `/del\x7f`},
		{"/bad\xff\xfeutf8", `/bad\xff\xfeutf8`},
		{`/back\slash`, `/back\\slash`},
		{"/c1\u009b31m", `/c1\u009b31m`},
		{"/rlo\u202etxt.exe", `/rlo\u202etxt.exe`},
		{"/ls\u2028sep", `/ls\u2028sep`},
		{"/tag\U000e0041", `/tag\U000e0041`},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// Every human writer escapes every name it prints: paths, link targets and
// host sources.
func TestHumanOutputEscapesNames(t *testing.T) {
	const evil = "/x\x1b]0;owned\x07\ny"
	rows := []Row{
		{Path: evil, Type: "symlink", Mode: "lrwxrwxrwx", Link: "t\x1b[31m\nz", Layer: "artifact", Source: "/host\n\x1b"},
		{Path: "/ok", Type: "file", Mode: "-rw-r--r--", Layer: "artifact"},
	}
	explanation := Explanation{
		Path: evil, Resolved: evil, Found: true,
		Via:      []Hop{{Link: evil, Target: evil, Layer: "artifact"}},
		Provider: &Provider{Layer: "artifact", Type: "symlink", Mode: "lrwxrwxrwx", Link: evil, Source: evil, NeededBy: []string{"/ok", evil}},
		Shadows:  []Provider{{Layer: "busybox", Type: "file", Source: evil}},
	}
	writers := map[string]func(*bytes.Buffer) error{
		"paths":       func(b *bytes.Buffer) error { return WritePaths(b, rows) },
		"long":        func(b *bytes.Buffer) error { return WriteLong(b, rows, time.Now()) },
		"explanation": func(b *bytes.Buffer) error { return WriteExplanation(b, explanation) },
		"removed": func(b *bytes.Buffer) error {
			return WriteExplanation(b, Explanation{Path: evil, RemovedBy: &Provider{Path: evil, Layer: "edits", Source: evil}})
		},
		"findings": func(b *bytes.Buffer) error {
			return WriteFindings(b, []Finding{{Rule: "symlink-dangling", Severity: Warning, Path: evil, Message: "-> " + evil, Fix: "remove the link"}})
		},
	}
	for name, write := range writers {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s: raw control characters in %q", name, out)
		}
		if !strings.Contains(out, `/x\x1b]0;owned\x07\ny`) {
			t.Errorf("%s: escaped name missing from %q", name, out)
		}
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if strings.HasPrefix(line, "y") || strings.HasPrefix(line, "z") {
				t.Errorf("%s: a name was split over lines: %q", name, out)
			}
		}
	}
}
