package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fledge init (issue 20): what it writes builds, passes check and boots as
// written, and it never overwrites. BusyBox comes from Debian's
// busybox-static (--busybox-url), as tests have no network.

const initHelloC = `#include <stdio.h>
int main(void) { puts("hello from fledge init"); return 0; }
`

// initAgent stands in for Kestrel: it runs the program and powers off.
const initAgent = "#!/bin/sh\n/usr/bin/hello\npoweroff -f\n"

func TestInitProgramBuildsChecksAndBoots(t *testing.T) {
	kernel := testKernel(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	gcc := needTool(t, "gcc", "gcc")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hello.c"), initHelloC, 0o644)
	if out, err := exec.Command(gcc, "-static", "-Os", "-o", filepath.Join(dir, "hello"), filepath.Join(dir, "hello.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc -static: %v\n%s (needs libc6-dev)", err, out)
	}
	writeFile(t, filepath.Join(dir, "kestrel"), initAgent, 0o755)

	mustFledge(t, dir, nil, "init", "--agent", "./kestrel", "--busybox-url", "/usr/bin/busybox", "./hello")
	mustFledge(t, dir, nil, "build")
	validateManifest(t, compileManifestSchema(t), filepath.Join(dir, "plugin.manifest.json"), sha256File(t, filepath.Join(dir, "plugin.cpio.gz")))
	manifest, err := os.ReadFile(filepath.Join(dir, "plugin.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), `"entrypoint": [
      "/usr/bin/hello"
    ]`) || !strings.Contains(string(manifest), `"name": "hello"`) {
		t.Errorf("the manifest's workload does not run /usr/bin/hello, or is not named hello:\n%s", manifest)
	}
	mustFledge(t, dir, nil, "check")
	mustFledge(t, dir, nil, "boot", "--kernel", kernel, "--expect", "^hello from fledge init$", "--timeout", "2m")

	// Again: refused, naming the file, and nothing changes.
	before := readFiles(t, dir, initFiles...)
	r := fledge(t, dir, nil, "init", "--agent", "./kestrel", "./hello")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "fledge: init: fledge.toml already exists in "+dir) {
		t.Errorf("init over an existing recipe: exit %d, stderr %q; want a refusal naming fledge.toml", r.code, r.stderr)
	}
	if after := readFiles(t, dir, initFiles...); after != before {
		t.Error("a refused init changed fledge.toml or manifest.toml")
	}
	// Only manifest.toml there: refused naming it, and no fledge.toml made.
	if err := os.Remove(filepath.Join(dir, "fledge.toml")); err != nil {
		t.Fatal(err)
	}
	r = fledge(t, dir, nil, "init", "./hello")
	if r.code == 0 || !strings.Contains(r.stderr, "manifest.toml already exists") {
		t.Errorf("init over an existing manifest.toml: exit %d, stderr %q; want a refusal naming manifest.toml", r.code, r.stderr)
	}
	if fileExists(filepath.Join(dir, "fledge.toml")) {
		t.Error("a refused init wrote fledge.toml")
	}
}

func readFiles(t *testing.T, dir string, names ...string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// The commented recipe (no argument) and the Dockerfile form build and
// pass check as written; without --agent the recipe takes the latest
// release, and --agent VERSION a given one.
func TestInitForms(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kestrel"), initAgent, 0o755)
	mustFledge(t, dir, nil, "init", "--agent", "kestrel", "--busybox-url", "/usr/bin/busybox")
	mustFledge(t, dir, nil, "build")
	mustFledge(t, dir, nil, "check")

	release := t.TempDir()
	mustFledge(t, release, nil, "init")
	if text := readFiles(t, release, "fledge.toml"); !strings.Contains(text, "source_strategy = \"release\"\nversion = \"latest\"") {
		t.Errorf("init without --agent does not take the latest release:\n%s", text)
	}
	tagged := t.TempDir()
	mustFledge(t, tagged, nil, "init", "--agent", "v0.1.0")
	if text := readFiles(t, tagged, "fledge.toml"); !strings.Contains(text, "source_strategy = \"release\"\nversion = \"v0.1.0\"") {
		t.Errorf("init --agent v0.1.0 does not take that release:\n%s", text)
	}

	needRoot(t)
	needTool(t, "runc", "runc")
	df := t.TempDir()
	bb, err := os.ReadFile(needTool(t, "busybox", "busybox-static"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(df, "busybox"), string(bb), 0o755)
	writeFile(t, filepath.Join(df, "Dockerfile"), "# a rootfs\nFROM scratch\nCOPY busybox /bin/busybox\n", 0o644)
	writeFile(t, filepath.Join(df, "kestrel"), initAgent, 0o755)
	mustFledge(t, df, nil, "init", "--agent", "./kestrel", "--busybox-url", "/usr/bin/busybox", "./Dockerfile")
	env := buildkitEnv(t, t.TempDir())
	mustFledge(t, df, env, "build", "--progress", "quiet")
	mustFledge(t, df, env, "check")
}

func TestInitRefusals(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "notes.txt"), "some notes\n", 0o644)
	writeFile(t, filepath.Join(dir, "app"), "#!/bin/sh\n", 0o755)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"init", "notes.txt"}, "notes.txt: neither a program (no execute permission) nor a Dockerfile"},
		{[]string{"init", "./missing"}, "./missing does not exist"},
		{[]string{"init", "--agent", "not a version", "./app"}, `--agent not a version: no such file here, and not a release version`},
		{[]string{"init", "--agent", "./gone/kestrel", "./app"}, "--agent ./gone/kestrel does not exist"},
		{[]string{"init", ".", "x"}, "init takes [PROGRAM | DOCKERFILE], got 2"},
		{[]string{"init", "."}, "fledge: init . is a folder; expected a file"},
	}
	for _, c := range cases {
		r := fledge(t, dir, nil, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "fledge: fledge ") {
			t.Errorf("fledge %v: exit %d, stderr %q; want an error mentioning %q, prefixed by fledge once", c.args, r.code, r.stderr, c.want)
		}
		if fileExists(filepath.Join(dir, "fledge.toml")) || fileExists(filepath.Join(dir, "manifest.toml")) {
			t.Fatalf("fledge %v failed but wrote a file", c.args)
		}
	}
}
