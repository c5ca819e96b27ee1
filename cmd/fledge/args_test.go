package main

import (
	"strings"
	"testing"
)

// Every command that needs arguments names them when they are missing, and
// one with a fixed count names what it takes when given too many.
func TestArityErrorsNameTheArguments(t *testing.T) {
	for _, c := range newRootCmd().Commands() {
		if c.Args == nil {
			continue
		}
		_, required := usageArgs(c.Use)
		if len(required) > 0 {
			err := c.Args(c, nil)
			want := c.Name() + " needs " + strings.Join(required, " ")
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "'fledge "+c.Name()+" --help'") {
				t.Errorf("%s with no arguments: %v; want %q and the help hint", c.Name(), err, want)
			}
		}
	}
	for _, tc := range []struct{ args, want string }{
		{"umount", "umount needs MOUNTPOINT; see 'fledge umount --help'"},
		{"why", "why needs PATH (usage: fledge why [RECIPE|ARTIFACT] PATH)"},
		{"pack x y", `pack takes [ARTIFACT], got 2: "x" "y"`},
		{"check a b", `check takes [RECIPE|ARTIFACT], got 2: "a" "b"`},
		{"diff a b c", `diff takes [ARTIFACT | A B], got 3: "a" "b" "c"`},
	} {
		r := fledge(t, t.TempDir(), nil, strings.Fields(tc.args)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "fledge: "+tc.want) {
			t.Errorf("fledge %s: exit %d, stderr %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// fledge --version prints what fledge version prints.
func TestVersionFlag(t *testing.T) {
	dir := t.TempDir()
	flag, cmd := mustFledge(t, dir, nil, "--version"), mustFledge(t, dir, nil, "version")
	if flag.stdout != cmd.stdout || !strings.HasPrefix(flag.stdout, "fledge ") {
		t.Fatalf("--version printed %q, version printed %q; want the same line", flag.stdout, cmd.stdout)
	}
}
