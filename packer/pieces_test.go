package packer

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestModuleVersionInKeys: the deflate module's version and sum name the
// compressor in every piece key, through a versioned replacement too, and
// a module replaced by a folder (no version, no sum) must not give a key
// that a later build of other code in that folder would share.
func TestModuleVersionInKeys(t *testing.T) {
	const mod = "github.com/klauspost/compress"
	other := debug.Module{Path: "example.com/other", Version: "v9.9.9", Sum: "h1:other"}
	for _, tc := range []struct {
		name string
		dep  debug.Module
		want string
	}{
		{"required", debug.Module{Path: mod, Version: "v1.17.9", Sum: "h1:abc"}, mod + "@v1.17.9 h1:abc"},
		{"replaced by a fork", debug.Module{Path: mod, Version: "v1.17.9", Sum: "h1:abc",
			Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.0", Sum: "h1:fork"}}, mod + "@v1.0.0 h1:fork"},
		{"replaced by a folder", debug.Module{Path: mod, Version: "v1.17.9", Sum: "h1:abc",
			Replace: &debug.Module{Path: "../compress"}}, mod + "@unknown "},
	} {
		got := moduleVersion(&debug.BuildInfo{Deps: []*debug.Module{&other, &tc.dep}}, true, mod)
		if !strings.HasPrefix(got, tc.want) || strings.Contains(tc.want, "unknown") != strings.Contains(got, "unknown") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := moduleVersion(nil, false, mod); !strings.HasPrefix(got, mod+"@unknown ") {
		t.Errorf("without build information: %q", got)
	}
}
