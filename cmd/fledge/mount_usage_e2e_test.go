package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A mountpoint that does not exist is named, absolute, with the mkdir
// that makes it.
func TestMountMissingMountpointSaysMkdir(t *testing.T) {
	needRoot(t)
	dir := copyExample(t, "default")
	r := runMount(t, dir, "no/such/mnt")
	want := "mkdir -p " + filepath.Join(dir, "no/such/mnt")
	if r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("fledge mount on a missing folder: exit %d, stderr:\n%s\nwant one line with %q", r.code, r.stderr, want)
	}
}

// `fledge mount MOUNTPOINT ARTIFACT` (or RECIPE) is caught and the right
// order shown; nothing is mounted.
func TestMountSwappedArguments(t *testing.T) {
	needRoot(t)
	dir := copyExample(t, "default")
	art := filepath.Join(t.TempDir(), "a.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	mnt := newMountpoint(t)
	for _, file := range []string{art, "fledge.toml"} {
		r := runMount(t, dir, mnt, file)
		if want := "fledge mount " + file + " " + mnt; r.code == 0 || !strings.Contains(r.stderr, "wrong way round") || !strings.Contains(r.stderr, want) {
			t.Errorf("fledge mount %s %s: exit %d, stderr:\n%s\nwant the order swapped: %q", mnt, file, r.code, r.stderr, want)
		}
	}
}

// Mounting over a folder with files warns with their count; the banner's
// unmount command is absolute and shell-quoted, whatever path was given;
// a change to the recipe while mounted gets a one-line notice.
func TestMountTellsTheUser(t *testing.T) {
	dir := copyExample(t, "default")
	abs := filepath.Join(dir, "my mnt")
	if err := os.MkdirAll(filepath.Join(abs, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(abs, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, dir, "my mnt")
	m.mnt = abs
	out := m.output()
	if !strings.Contains(out, "holds 2 entries, hidden") {
		t.Errorf("mounting over a folder with 2 entries says:\n%s\nwant a warning naming 2 entries", out)
	}
	if want := "`fledge umount '" + abs + "'`"; !strings.Contains(out, want) {
		t.Errorf("banner:\n%s\nwant %s", out, want)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# changed\n")
	f.Close()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(m.output(), "fledge.toml changed"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no notice 5s after fledge.toml changed under a live mount:\n%s", m.output())
		}
	}
	m.umount(t)
	if n := strings.Count(m.output(), "fledge.toml changed"); n != 1 {
		t.Errorf("%d notices of one change:\n%s", n, m.output())
	}
}
