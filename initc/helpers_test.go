package initc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostPATH is the PATH the tests started with; tests narrow PATH to what a
// compiler needs, and look up the real tools here.
var hostPATH = os.Getenv("PATH")

// hostTool finds a tool on hostPATH.
func hostTool(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range filepath.SplitList(hostPATH) {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	t.Fatalf("%s is not on PATH: install it (apt-get install musl-tools gcc binutils)", name)
	return ""
}

// toolDir makes a directory holding links to the named host tools and
// nothing else, for use as PATH.
func toolDir(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range tools {
		if err := os.Symlink(hostTool(t, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// muslTools and gccTools are what each compiler needs on PATH: musl-gcc is
// a script that runs x86_64-linux-gnu-gcc, and gcc runs as and ld.
var (
	muslTools = []string{"musl-gcc", "x86_64-linux-gnu-gcc", "as", "ld"}
	gccTools  = []string{"gcc", "as", "ld"}
)

// buildWith compiles the init with the first of tools, PATH set to only
// the given tools.
func buildWith(t *testing.T, cacheDir string, tools ...string) []byte {
	t.Helper()
	t.Setenv("PATH", toolDir(t, tools...))
	bin, err := Build(testContext(t), tools[0], cacheDir)
	if err != nil {
		t.Fatalf("Build with %s: %v", strings.Join(tools, ", "), err)
	}
	return bin
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
