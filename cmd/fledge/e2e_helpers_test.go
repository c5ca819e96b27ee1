package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// End-to-end tests run the real fledge binary, built once for the package.
var fledgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fledge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Open to all: one test runs the binary as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fledgeBin = filepath.Join(dir, "fledge")
	cacheDir = filepath.Join(dir, "cache")
	// Artifacts' workspaces go below it too, not into ~/.local/state.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	build := exec.Command("go", "build", "-o", fledgeBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fledge:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished fledge run.
type result struct {
	stdout, stderr string
	code           int
}

// fledge runs the binary in dir with the tests' cache unless env sets one.
func fledge(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(fledgeBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+cacheDir), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fledge %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustFledge is fledge that fails the test on a non-zero exit.
func mustFledge(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	r := fledge(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("fledge %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// cacheDir is one fledge cache for the package's tests, so downloads and
// BuildKit output are made once; a test about caching passes its own
// XDG_CACHE_HOME in env.
var cacheDir string

// copyExample copies examples/NAME into a fresh temp folder, so builds
// never write into the checkout, and returns the copy's path.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "examples", name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func repoRoot(t *testing.T) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

// needTool fails (never skips) when a tool the suite relies on is missing.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (bash .ci/setup does)", name, pkg)
	}
	return p
}

// writeFile writes data to p with mode, failing the test on an error.
func writeFile(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}
