package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func keyOf(t *testing.T, s Spec) string {
	t.Helper()
	in, err := resolveSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	k, err := cacheKey(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCacheKeyFollowsWhatTheBuildSees(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM scratch\nCOPY . /\n", 0o644)
	write("app", "v1", 0o755)
	write(".dockerignore", "ignored\n", 0o644)
	write("ignored", "a", 0o644)
	key := func() string {
		t.Helper()
		return keyOf(t, Spec{Dockerfile: filepath.Join(dir, "Dockerfile"), BuildArgs: map[string]string{"A": "1"}})
	}
	base := key()
	if key() != base {
		t.Fatal("the key is not stable")
	}
	write("ignored", "b", 0o644)
	if key() != base {
		t.Error("a file .dockerignore excludes changed the key")
	}
	steps := []struct {
		what   string
		change func()
	}{
		{"content", func() { write("app", "v2", 0o755) }},
		{"mode", func() { write("app", "v2", 0o700) }},
		{"new file", func() { write("extra", "", 0o644) }},
		{"Dockerfile", func() { write("Dockerfile", "FROM scratch\n", 0o644) }},
	}
	prev := base
	for _, s := range steps {
		s.change()
		if k := key(); k == prev {
			t.Errorf("changing the context's %s kept the key", s.what)
		} else {
			prev = k
		}
	}
	in, _ := resolveSpec(Spec{Dockerfile: filepath.Join(dir, "Dockerfile"), BuildArgs: map[string]string{"A": "2"}})
	if k, _ := cacheKey(in, 0); k == prev {
		t.Error("a changed build arg kept the key")
	}
	in.args["A"] = "1"
	if k, _ := cacheKey(in, 1); k == prev {
		t.Error("a changed epoch kept the key")
	}
}

// BuildKit resolves a context given as a symlink to a directory and sends
// what is inside; the key must see the same files.
func TestCacheKeyReadsAContextGivenAsASymlink(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "ctx")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	df := filepath.Join(real, "Dockerfile")
	if err := os.WriteFile(df, []byte("FROM scratch\nCOPY . /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := keyOf(t, Spec{Dockerfile: df, Context: link})
	if err := os.WriteFile(filepath.Join(real, "app"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if keyOf(t, Spec{Dockerfile: df, Context: link}) == before {
		t.Error("a new file in a context reached through a symlink kept the key")
	}
}
