package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Edits made through the mount are listed by `fledge diff` and discarded
// by `fledge reset`, one path or all.
func TestDiffAndResetWorkspace(t *testing.T) {
	dir := copyExample(t, "default")
	if r := fledge(t, dir, nil, "diff"); r.code != 0 || r.stdout != "" || r.stderr != "fledge: no edits in the workspace of fledge.toml\n" {
		t.Fatalf("diff of a fresh workspace: exit %d, stdout %q, stderr %q; want exit 0, no output and the note on stderr", r.code, r.stdout, r.stderr)
	}
	m := startMount(t, dir, newMountpoint(t))
	p := func(s string) string { return filepath.Join(m.mnt, s) }
	os.WriteFile(p("etc/added"), []byte("a"), 0o644)
	os.Remove(p("bin/ls"))
	os.Chmod(p("usr/bin/hello"), 0o700)
	os.WriteFile(p("bin/kestrel"), []byte("#!/bin/sh\necho changed\n"), 0o755)
	m.umount(t)

	r := fledge(t, dir, nil, "diff")
	if r.code != 1 {
		t.Fatalf("diff with edits: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"added    /etc/added", "deleted  /bin/ls", "mode     /usr/bin/hello  (mode 0755 -> 0700)", "changed  /bin/kestrel  (content sha256 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, r.stdout)
		}
	}
	mustFledge(t, dir, nil, "reset", "/bin/ls")
	r = fledge(t, dir, nil, "diff", "--json")
	var changes []struct{ Path, Kind string }
	if err := json.Unmarshal([]byte(r.stdout), &changes); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, r.stdout)
	}
	for _, c := range changes {
		if c.Path == "/bin/ls" {
			t.Errorf("reset /bin/ls left %v", c)
		}
	}
	if len(changes) != 3 {
		t.Errorf("after resetting one path, %d changes, want 3: %+v", len(changes), changes)
	}
	mustFledge(t, dir, nil, "reset")
	if r := fledge(t, dir, nil, "diff"); r.code != 0 || r.stdout != "" {
		t.Fatalf("diff after reset: exit %d\n%s", r.code, r.stdout)
	}
}

// `fledge diff A B` compares two artifacts, or a recipe and an artifact.
func TestDiffArtifacts(t *testing.T) {
	dir := copyExample(t, "default")
	a := filepath.Join(t.TempDir(), "a.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", a)
	if r := fledge(t, dir, nil, "diff", "fledge.toml", a); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no differences between fledge.toml and "+a) {
		t.Fatalf("recipe vs its own pack: exit %d, stdout %q, stderr %q; want exit 0 and the note on stderr", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho other\n"), 0o644)
	b := filepath.Join(t.TempDir(), "b.cpio")
	mustFledge(t, dir, nil, "pack", "-o", b, "--compression", "none")
	r := fledge(t, dir, nil, "diff", a, b)
	if r.code != 1 || !strings.Contains(r.stdout, "changed  /usr/bin/hello  (content sha256 ") {
		t.Fatalf("diff of two artifacts: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(strings.TrimSpace(r.stdout), "\n") + 1; n != 1 {
		t.Errorf("%d lines, want one per changed path:\n%s", n, r.stdout)
	}
}

// `fledge reset PATH` for a path that holds no edit (a typo, or a path
// through a symlinked folder) says so and fails, instead of claiming to
// have discarded something.
func TestResetPathWithoutEdits(t *testing.T) {
	dir := copyExample(t, "default")
	edit := filepath.Join(dir, ".fledge", "edits", "etc", "added")
	if err := os.MkdirAll(filepath.Dir(edit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(edit, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := fledge(t, dir, nil, "reset", "/etc/adedd")
	if r.code == 0 || !strings.Contains(r.stderr, "no edits at /etc/adedd") || strings.Contains(r.stdout, "discarded") {
		t.Errorf("reset of a path without edits: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(edit); err != nil {
		t.Fatalf("the edit at /etc/added is gone: %v", err)
	}
	if r := mustFledge(t, dir, nil, "reset", "/etc/added"); !strings.Contains(r.stdout, "discarded the edits at /etc/added") {
		t.Errorf("reset /etc/added: %s", r.stdout)
	}
	if r := mustFledge(t, dir, nil, "reset"); !strings.Contains(r.stdout, "discarded") {
		t.Errorf("reset of everything: %s", r.stdout)
	}
}

// TestBuildSaysItIncludesEdits: a build that packs edits made through the
// mount says so, with the count diff lists; one without edits says nothing.
func TestBuildSaysItIncludesEdits(t *testing.T) {
	dir := copyExample(t, "default")
	out := filepath.Join(t.TempDir(), "img")
	if r := mustFledge(t, dir, nil, "build", "-o", out); strings.Contains(r.stderr, "edit") {
		t.Errorf("a build without edits speaks of edits:\n%s", r.stderr)
	}
	m := startMount(t, dir, newMountpoint(t))
	os.WriteFile(filepath.Join(m.mnt, "etc/added"), []byte("a"), 0o644)
	os.Remove(filepath.Join(m.mnt, "bin/ls"))
	m.umount(t)
	r := mustFledge(t, dir, nil, "build", "-o", out)
	if !strings.Contains(r.stderr, "2 edits included; `fledge diff` lists them") {
		t.Errorf("build with 2 edits:\n%s", r.stderr)
	}
}
