package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The release binary must run on any Linux: no ELF interpreter and no
// shared library, whatever C toolchain the build machine has.
func TestReleaseBinaryIsStatic(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fledge")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), ".ci", "release"), "v9.9.9-test", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf(".ci/release: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("release binary has a %v program header; expected a static executable (CGO_ENABLED=0)", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("release binary needs shared libraries %v (%v); expected none", libs, err)
	}
	if b, err := exec.Command("file", out).Output(); err != nil || !strings.Contains(string(b), "statically linked") {
		t.Errorf("file %s: %s (%v); expected \"statically linked\"", out, b, err)
	}
	v, err := exec.Command(out, "--version").Output()
	if err != nil || !strings.HasPrefix(string(v), "fledge v9.9.9-test ") {
		t.Errorf("%s --version: %q (%v); expected the version .ci/release stamped", out, v, err)
	}
}

// The README's install line must name this module's command, or
// go install fetches something else, or nothing.
func TestReadmeInstallsThisFledge(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`go install (\S+)@latest`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no `go install …@latest` line")
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	path := regexp.MustCompile(`(?m)^module (\S+)$`).FindSubmatch(mod)
	if want := string(path[1]) + "/cmd/fledge"; string(m[1]) != want {
		t.Errorf("README installs %s; go.mod's command is %s", m[1], want)
	}
	if regexp.MustCompile(`(?m)^replace `).Match(mod) {
		t.Error("go.mod has a replace directive, which go install PKG@latest refuses")
	}
}

// `fledge completion` (cobra's) writes a script for each documented shell.
func TestCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := mustFledge(t, dir, nil, "completion", sh)
		if !strings.Contains(r.stdout, "fledge") || !strings.Contains(r.stdout, sh) {
			t.Errorf("fledge completion %s: %d bytes that name neither fledge nor %s", sh, len(r.stdout), sh)
		}
	}
}
