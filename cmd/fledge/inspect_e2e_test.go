package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/packer"
)

// End-to-end tests of ls, why, check and boot through the built binary.

func TestCheckPassesTheExamples(t *testing.T) {
	for _, name := range []string{"default", "custom", "none"} {
		t.Run(name, func(t *testing.T) {
			dir := copyExample(t, name)
			r := fledge(t, dir, nil, "check", "--json")
			var found []inspect.Finding
			if err := json.Unmarshal([]byte(r.stdout), &found); err != nil {
				t.Fatalf("check --json printed no JSON array: %v\n%s\n%s", err, r.stdout, r.stderr)
			}
			if r.code != 0 || inspect.Errors(found) > 0 {
				t.Fatalf("examples/%s: exit %d, findings %+v\nstderr: %s", name, r.code, found, r.stderr)
			}
			art := buildExample(t, name)
			if r := fledge(t, dir, nil, "check", art); r.code != 0 {
				t.Fatalf("the artifact of examples/%s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
			}
		})
	}
}

// noneRecipe writes a no-init recipe whose /init is the given script, with
// BusyBox from Debian's busybox-static.
func noneRecipe(t *testing.T, script string, initMode os.FileMode) string {
	t.Helper()
	needTool(t, "busybox", "busybox-static")
	dir := t.TempDir()
	recipe := "version = \"1\"\nstrategy = \"initramfs\"\n[init]\nnone = true\n[source]\nbusybox_url = \"file:///usr/bin/busybox\"\n[mappings]\n\"./init\" = \"/init\"\n"
	if err := os.WriteFile(filepath.Join(dir, "fledge.toml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte("#!/bin/sh\n"+script), initMode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckFailsABrokenRecipe(t *testing.T) {
	dir := noneRecipe(t, "echo hi\n", 0o644)
	r := fledge(t, dir, nil, "check")
	if r.code != 2 || !strings.Contains(r.stdout, "error init-not-executable: /init:") || !strings.Contains(r.stdout, "fix: ") {
		t.Fatalf("check of a recipe with a non-executable /init: exit %d (want 2)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "1 error") {
		t.Errorf("stderr lacks the one-line summary: %s", r.stderr)
	}
}

// An artifact has no recipe to say its init mode; fledge's init naming
// /bin/kestrel is what makes check require the agent.
func TestCheckWantsKestrelInADefaultArtifact(t *testing.T) {
	art := withoutEntry(t, buildExample(t, "default"), "bin/kestrel")
	r := fledge(t, t.TempDir(), nil, "check", art)
	if r.code != 2 || !strings.Contains(r.stdout, "error kestrel-missing: /bin/kestrel:") {
		t.Fatalf("check of a default-mode artifact without /bin/kestrel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestLsAndWhyOnAnArtifact(t *testing.T) {
	art := buildExample(t, "default")
	dir := t.TempDir()
	var rows []inspect.Row
	r := mustFledge(t, dir, nil, "ls", art, "/usr/bin", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	want := inspect.Row{Path: "/usr/bin/hello", Type: "file", Mode: "-rwxr-xr-x", Perm: "0755", Size: 43, MTime: "1970-01-01T00:00:00Z", Layer: "artifact", Source: art}
	if !slices.Contains(rows, want) {
		t.Fatalf("ls --json of /usr/bin lacks %+v:\n%s", want, r.stdout)
	}
	r = mustFledge(t, dir, nil, "ls", "-l", art, "/dev")
	if !strings.Contains(r.stdout, "crw------- 0:0 5, 1 "+cpioDate(time.Unix(0, 0))+" /dev/console  [artifact ("+art+")]") {
		t.Errorf("ls -l /dev lacks the console line:\n%s", r.stdout)
	}
	r = mustFledge(t, dir, nil, "why", art, "/bin/sh")
	for _, w := range []string{"provided by layer artifact: symlink lrwxrwxrwx -> busybox", "resolves to /bin/busybox"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("why /bin/sh lacks %q:\n%s", w, r.stdout)
		}
	}
	if r := fledge(t, dir, nil, "why", art, "/no/such"); r.code != 1 || !strings.Contains(r.stdout, "not in the image") {
		t.Errorf("why of a missing path: exit %d, stdout %s", r.code, r.stdout)
	}
}

func TestWhyOnARecipeShowsMappingSource(t *testing.T) {
	dir := copyExample(t, "default")
	r := mustFledge(t, dir, nil, "why", "/usr/bin/hello")
	if !strings.Contains(r.stdout, "provided by layer mappings: file -rwxr-xr-x from "+filepath.Join(dir, "hello")) {
		t.Fatalf("why /usr/bin/hello:\n%s", r.stdout)
	}
}

// The gen_init_cpio listing is turned back into an archive with the
// packer; listing that archive again must give the same lines. File lines
// name contents by their sha256 under --extract-to, so equal listings mean
// equal names, types, modes, owners, link targets, devices, hard links and
// contents.
func TestGenInitCpioListRoundTrip(t *testing.T) {
	art := buildExample(t, "default")
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs")
	list := mustFledge(t, dir, nil, "ls", art, "--format", "gen_init_cpio", "--extract-to", blobs).stdout
	ents, err := inspect.ParseInitList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	v, err := (&overlay.Stack{Layers: []overlay.Layer{&overlay.Static{LayerName: "list", List: ents}}}).View()
	if err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "back.cpio.gz")
	if _, err := packer.WriteFile(context.Background(), v, back, packer.Options{}); err != nil {
		t.Fatal(err)
	}
	again := mustFledge(t, dir, nil, "ls", back, "--format", "gen_init_cpio", "--extract-to", blobs).stdout
	if again != list {
		t.Fatalf("listing changed in the round trip\nfirst:\n%s\nagain:\n%s", list, again)
	}
	if !strings.Contains(list, "file /bin/busybox "+blobs+"/") || !strings.Contains(list, "nod /dev/console 0600 0 0 c 5 1\n") {
		t.Errorf("listing lacks expected lines:\n%s", list)
	}
}

func TestBootVerdicts(t *testing.T) {
	kernel := testKernel(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	// An agent prints its line and stays up, waiting for work.
	const staysUp = "echo agent-ready\nexec sleep 100000\n"
	cases := []struct {
		name, script, expect, timeout string
		args                          []string
		code                          int
		stderr                        string
	}{
		{"good", "echo boot-test-ok\npoweroff -f\n", "^boot-test-ok$", "2m", nil, 0, "fledge: boot ok: expected line appeared"},
		{"panics", "echo about to exit\nexit 1\n", "^never$", "2m", nil, exitBootFailed, "Kernel panic"},
		{"hangs", "echo hanging\nwhile :; do sleep 1; done\n", "^never$", "45s", nil, exitBootTimedOut, "QEMU killed"},
		{"stays up", staysUp, "^agent-ready$", "60s", nil, 0,
			"no failure followed within 2s; QEMU stopped"},
		{"stays up, power-off required", staysUp, "^agent-ready$", "40s", []string{"--expect-poweroff"}, exitBootTimedOut,
			"but the guest did not power off within 40s; QEMU killed"},
		{"panics within the grace", "echo agent-ready\nsleep 1\nexit 1\n", "^agent-ready$", "2m", []string{"--grace", "10s"}, exitBootFailed,
			"Kernel panic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := noneRecipe(t, tc.script, 0o755)
			token := fmt.Sprintf("fledge.test=%s-%d", tc.name, time.Now().UnixNano())
			start := time.Now()
			args := append([]string{"boot", "--kernel", kernel, "--expect", tc.expect, "--timeout", tc.timeout, "--append", token}, tc.args...)
			r := fledge(t, dir, nil, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("boot: exit %d (want %d), stderr %q (want %q)\nconsole:\n%s", r.code, tc.code, r.stderr, tc.stderr, r.stdout)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 {
				t.Errorf("the verdict should be one line, got:\n%s", r.stderr)
			}
			if !strings.Contains(r.stdout, "Run /init as init process") {
				t.Errorf("the console was not streamed to stdout:\n%s", r.stdout)
			}
			if left := processesWith(t, token); left != "" {
				t.Errorf("QEMU left running after %s: %s", time.Since(start), left)
			}
		})
	}
}

// processesWith lists running processes whose command line holds token,
// as pgrep sees them.
func processesWith(t *testing.T, token string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, "pgrep", "procps"), "-af", token).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return "" // pgrep found nothing
	} else if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	return string(out)
}

// A file named like an artifact is opened as one even when it is damaged
// or missing, so the message is about the archive, not TOML syntax.
func TestArtifactNamesAreNotReadAsRecipes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.cpio.gz"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "bad.cpio.gz"}, {"ls", "bad.cpio.gz"}, {"ls", filepath.Join(dir, "bad.cpio.gz")},
		{"check", "missing.cpio.zst"},
	} {
		r := fledge(t, dir, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "artifact ") || strings.Contains(r.stderr, "recipe") || strings.Contains(r.stderr, "'='") {
			t.Errorf("fledge %v: exit %d, stderr %q; want exit 1 and a message about the artifact", args, r.code, r.stderr)
		}
	}
}

// A relative argument that is neither a recipe nor an artifact is a path
// in the image, from its root, as cpio and lsinitrd name them; a missing
// file named like a recipe is still reported missing on the host.
func TestRelativeImagePaths(t *testing.T) {
	dir := copyExample(t, "none")
	r := mustFledge(t, dir, nil, "why", "bin/sh")
	if !strings.HasPrefix(r.stdout, "/bin/sh\n") {
		t.Errorf("why bin/sh explains something else:\n%s", r.stdout)
	}
	if r := mustFledge(t, dir, nil, "ls", "usr/bin"); !strings.HasPrefix(r.stdout, "/usr/bin\n") {
		t.Errorf("ls usr/bin lists something else:\n%s", r.stdout)
	}
	if r := fledge(t, dir, nil, "ls", "missing.toml"); r.code != 1 || !strings.Contains(r.stderr, "recipe missing.toml not found") {
		t.Errorf("ls missing.toml: exit %d, stderr %q; want the recipe reported missing", r.code, r.stderr)
	}
}

// cpioDate is t as ls -l and cpio -tv print a date more than six months old.
func cpioDate(t time.Time) string { return t.Local().Format("Jan _2  2006") }

// A mistyped flag value means the boot could not be attempted: exit 1,
// before anything is packed, naming the accepted values.
func TestBootRefusesAnUnknownAccelerator(t *testing.T) {
	dir := noneRecipe(t, "poweroff -f\n", 0o755)
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not booted"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := fledge(t, dir, nil, "boot", "--kernel", kernel, "--accel", "kvmm")
	if r.code != 1 || !strings.Contains(r.stderr, `--accel "kvmm"`) || !strings.Contains(r.stderr, "tcg or kvm") {
		t.Fatalf("boot --accel kvmm: exit %d, stderr %q; want exit 1 naming tcg or kvm", r.code, r.stderr)
	}
}

// ls flags that cannot go together are refused rather than ignored.
func TestLsRefusesFlagsThatDoNotCombine(t *testing.T) {
	dir := copyExample(t, "none")
	for _, args := range [][]string{
		{"ls", "--extract-to", t.TempDir()},
		{"ls", "--format", "gen_init_cpio", "--json"},
		{"ls", "--format", "gen_init_cpio", "-l"},
	} {
		r := fledge(t, dir, nil, args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "gen_init_cpio") {
			t.Errorf("fledge %v: exit %d, stdout %d bytes, stderr %q; want a refusal", args, r.code, len(r.stdout), r.stderr)
		}
	}
}
