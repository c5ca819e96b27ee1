package main

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildWithoutCompilerBoots builds the default example with a PATH
// that holds nothing, so no gcc, musl-gcc or cc, and a fresh cache: the
// image carries the prebuilt init, byte for byte, and boots.
func TestBuildWithoutCompilerBoots(t *testing.T) {
	t.Parallel()
	dir := copyExample(t, "default")
	out := filepath.Join(t.TempDir(), "default")
	env := []string{"PATH=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir(), "FLEDGE_INIT_CC="}
	mustFledge(t, dir, env, "build", "-o", out)
	artifact := out + ".cpio.gz"
	if !bytes.Equal(imageInit(t, artifact), prebuiltInit(t)) {
		t.Error("/init of the image is not initc/prebuilt/init-x86_64")
	}
	res := bootImage(t, artifact, `^example-agent: done$`)
	for _, line := range []string{"example-agent: pid=1", "example-agent: mount /proc proc", "hello from the mapped app"} {
		if !hasLine(res.Output, line) {
			t.Errorf("console lacks %q: the prebuilt init must exec the agent as PID 1 with its mounts", line)
		}
	}
}

// TestInitCCRebuilds: FLEDGE_INIT_CC=gcc compiles the init with gcc (a
// glibc init, which the prebuilt musl one is not), and a compiler that is
// not on PATH is named in the error with the way back to the prebuilt init.
func TestInitCCRebuilds(t *testing.T) {
	t.Parallel()
	dir := copyExample(t, "default")
	out := filepath.Join(t.TempDir(), "default")
	mustFledge(t, dir, []string{"FLEDGE_INIT_CC=gcc"}, "build", "-o", out)
	bin := imageInit(t, out+".cpio.gz")
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("/init is not ELF: %v", err)
	}
	if f.Section(".note.ABI-tag") == nil || bytes.Equal(bin, prebuiltInit(t)) {
		t.Error("FLEDGE_INIT_CC=gcc gave no glibc init: the prebuilt init was used")
	}

	r := fledge(t, dir, []string{"FLEDGE_INIT_CC=no-such-cc"}, "build", "-o", out)
	for _, want := range []string{"FLEDGE_INIT_CC=no-such-cc, which is not on PATH", "unset FLEDGE_INIT_CC"} {
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("FLEDGE_INIT_CC=no-such-cc: exit %d, stderr lacks %q:\n%s", r.code, want, r.stderr)
		}
	}
}

// imageInit is the /init of an artifact, read by fledge cat.
func imageInit(t *testing.T, artifact string) []byte {
	t.Helper()
	return []byte(mustFledge(t, t.TempDir(), nil, "cat", artifact, "/init").stdout)
}

// prebuiltInit is the init fledge carries.
func prebuiltInit(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "initc", "prebuilt", "init-x86_64"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
