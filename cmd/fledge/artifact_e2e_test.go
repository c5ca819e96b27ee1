package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shell runs a bash script in dir and returns its stdout.
func shell(t *testing.T, dir, script string) []byte {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return out.Bytes()
}

// distroInitrd writes an initrd laid out as distributions ship them
// (testdata/distro-initrd.sh): an uncompressed early archive holding the
// AMD microcode, then the main archive compressed with compress (a shell
// filter), both written by GNU cpio. The main archive has /init running
// /scripts/hello, a hard-link pair and files to edit.
func distroInitrd(t *testing.T, compress string) string {
	t.Helper()
	needTool(t, "cpio", "cpio")
	busybox := needTool(t, "busybox", "busybox-static")
	dir := t.TempDir()
	shell(t, dir, filepath.Join(repoRoot(t), "testdata", "distro-initrd.sh")+" "+busybox+" && ("+compress+") < main.cpio > main.cz && cat early.cpio main.cz > initrd.img")
	return filepath.Join(dir, "initrd.img")
}

// An artifact mounts as a live workspace: edits are kept apart from the
// artifact, survive remounts, are listed by diff and dropped by reset; one
// mount at a time; --workspace chooses the folder; a changed artifact is
// named.
func TestArtifactMountIsAWorkspace(t *testing.T) {
	art := distroInitrd(t, "gzip -n")
	before, err := fileSHA256(art)
	if err != nil {
		t.Fatal(err)
	}
	m := startMount(t, "/", newMountpoint(t), art)
	if !strings.Contains(m.output(), "edits kept in "+os.Getenv("XDG_STATE_HOME")+"/fledge/artifacts/initrd.img-") {
		t.Errorf("mount message does not name the workspace below $XDG_STATE_HOME/fledge/artifacts:\n%s", m.output())
	}
	if err := os.WriteFile(filepath.Join(m.mnt, "etc", "motd"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(m.mnt, "etc", "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(m.mnt, "scripts", "hello"), 0o700); err != nil {
		t.Fatal(err)
	}
	m.umount(t)
	if after, _ := fileSHA256(art); after != before {
		t.Errorf("the mount wrote the artifact: sha256 %s, was %s", after, before)
	}

	r := fledge(t, "/", nil, "diff", art)
	want := "changed  /etc/motd  (content sha256 ca87d9622320 -> 68f01b289aed)\ndeleted  /etc/gone\nmode     /scripts/hello  (mode 0755 -> 0700)\n"
	if r.code != 1 || !sameLines(r.stdout, want) {
		t.Errorf("diff %s: exit %d, stdout:\n%s\nwant exit 1 and:\n%s", art, r.code, r.stdout, want)
	}

	m = startMount(t, "/", newMountpoint(t), art)
	if b, _ := os.ReadFile(filepath.Join(m.mnt, "etc", "motd")); string(b) != "edited\n" {
		t.Errorf("after a remount /etc/motd reads %q, want the edit", b)
	}
	second := fledge(t, "/", nil, "mount", art, newMountpoint(t))
	if second.code == 0 || !strings.Contains(second.stderr, "is already mounted at "+m.mnt) {
		t.Errorf("a second mount of the artifact's workspace: exit %d, stderr %q; want it refused, naming %s", second.code, second.stderr, m.mnt)
	}
	m.umount(t)

	ws := filepath.Join(t.TempDir(), "ws")
	m = startMount(t, "/", newMountpoint(t), "--workspace", ws, art)
	if err := os.WriteFile(filepath.Join(m.mnt, "etc", "elsewhere"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m.umount(t)
	if _, err := os.Lstat(filepath.Join(ws, "edits", "etc", "elsewhere")); err != nil {
		t.Errorf("--workspace %s: the edit is not kept there: %v", ws, err)
	}
	if r := fledge(t, "/", nil, "diff", "--workspace", ws, art); r.code != 1 || !strings.Contains(r.stdout, "added    /etc/elsewhere") || strings.Contains(r.stdout, "motd") {
		t.Errorf("diff --workspace %s: exit %d, stdout:\n%s\nwant the one edit made there", ws, r.code, r.stdout)
	}

	if err := os.WriteFile(art, append(must(os.ReadFile(art)), make([]byte, 512)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := fledge(t, "/", nil, "diff", art); !strings.Contains(r.stderr, "fledge: warning: "+art+" changed since its edits were made") {
		t.Errorf("diff after the artifact changed: stderr %q; want a warning that it changed", r.stderr)
	}
	mustFledge(t, "/", nil, "reset", art)
	if r := fledge(t, "/", nil, "diff", art); r.code != 0 || r.stdout != "" || strings.Contains(r.stderr, "warning") {
		t.Errorf("diff after reset: exit %d, stdout %q, stderr %q; want no edits and no warning", r.code, r.stdout, r.stderr)
	}
	if r := fledge(t, "/", nil, "mount", "--read-only", art, "/nonexistent-mountpoint"); strings.Contains(r.stderr, "edits kept") {
		t.Errorf("--read-only mount announced a workspace: %q", r.stderr)
	}
}

// sameLines compares two blocks of lines in any order.
func sameLines(a, b string) bool {
	x, y := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	if len(x) != len(y) {
		return false
	}
	seen := map[string]int{}
	for _, l := range x {
		seen[l]++
	}
	for _, l := range y {
		if seen[l]--; seen[l] < 0 {
			return false
		}
	}
	return true
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
