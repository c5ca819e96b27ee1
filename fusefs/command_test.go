package fusefs

import "testing"

func TestQuoteArg(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/mnt/img", "/mnt/img"},
		{"/mnt/my img", "'/mnt/my img'"},
		{"/mnt/it's", `'/mnt/it'\''s'`},
		{"", "''"},
		{"/mnt/a\nb", `$'/mnt/a\nb'`},
		{"/mnt/\x1b[2J'", `$'/mnt/\x1b[2J\''`},
		{"/mnt/\xff", `$'/mnt/\xff'`},
	} {
		if got := ShellQuote(c.in); got != c.want {
			t.Errorf("ShellQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/mnt/img", "/mnt/img"},
		{`/mnt/my\040img`, "/mnt/my img"},
		{`/mnt/a\134b\012c`, "/mnt/a\\b\nc"},
		{`/mnt/x\04`, `/mnt/x\04`},
	} {
		if got := unescapeMountinfo(c.in); got != c.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
