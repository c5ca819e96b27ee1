package ldso

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// The libraries layer is resolved again on every merge of a live mount.
// Warm is that case with nothing changed (headers cached by file identity);
// Cold parses every header again, the baseline to compare with:
//
//	go test -run - -bench Libraries ./overlay/ldso/
func benchLibraries(b *testing.B, fresh bool) {
	dir := b.TempDir()
	data, err := os.ReadFile("/usr/bin/curl")
	if err != nil {
		b.Fatalf("%v (install the Debian package curl)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "curl"), data, 0o755); err != nil {
		b.Fatal(err)
	}
	below := []overlay.Layer{overlay.Skeleton()}
	above := []overlay.Layer{overlay.Mappings(dir, []overlay.Mapping{{Host: filepath.Join(dir, "curl"), Guest: "/usr/bin/curl"}})}
	l := Libraries(below, above, Host{Root: "/"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if fresh {
			l = Libraries(below, above, Host{Root: "/"})
		}
		if _, err := l.Entries(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLibrariesWarm(b *testing.B) { benchLibraries(b, false) }
func BenchmarkLibrariesCold(b *testing.B) { benchLibraries(b, true) }
