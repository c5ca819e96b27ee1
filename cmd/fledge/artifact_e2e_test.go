package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/qemu"
	"github.com/volantvm/fledge/packer"
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
	ro := startMount(t, "/", newMountpoint(t), "--read-only", art)
	if out := ro.output(); strings.Contains(out, "edits kept") || !strings.Contains(out, "read-only") {
		t.Errorf("--read-only mount announced a workspace: %q", out)
	}
	ro.umount(t)
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

// debianInitrd writes the initrd Debian's mkinitramfs makes for the test
// kernel (zstd), with an uncompressed early archive holding the AMD
// microcode in front. mkinitramfs reads /lib/modules/VERSION and
// /boot/config-VERSION: in a mount namespace of its own, the unpacked
// kernel package .ci/setup keeps takes their place, so the host is left
// as it is.
func debianInitrd(t *testing.T) string {
	t.Helper()
	needRoot(t)
	needTool(t, "mkinitramfs", "initramfs-tools")
	needTool(t, "unshare", "util-linux")
	tree := kernelTree(t)
	versions, _ := filepath.Glob(filepath.Join(tree, "lib", "modules", "*"))
	if len(versions) != 1 {
		t.Fatalf("expected the unpacked test kernel's one module tree at %s/lib/modules/VERSION, found %v; run .ci/setup", tree, versions)
	}
	version := filepath.Base(versions[0])
	dir := t.TempDir()
	shell(t, dir, `
unshare -m sh -ec '
mount -t tmpfs none /lib/modules
mkdir /lib/modules/`+version+`
mount --bind `+versions[0]+` /lib/modules/`+version+`
mount --bind `+tree+`/boot /boot
mkinitramfs -o main.img `+version+`' >/dev/null 2>&1
mkdir -p early/kernel/x86/microcode
head -c 4000 /dev/zero | tr '\0' u > early/kernel/x86/microcode/AuthenticAMD.bin
(cd early && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > early.cpio
cat early.cpio main.img > initrd.img
`)
	return filepath.Join(dir, "initrd.img")
}

// The acceptance: a Debian initrd is mounted, a script it runs is
// changed to print a marker, a file deleted, another chmodded, and packed:
// the early archive is byte-identical, the main one still zstd, diff lists
// exactly the three changes, and the kernel runs the changed script. With
// no edits the pack is the initrd itself.
func TestDebianInitrdEditedAndRepacked(t *testing.T) {
	art := debianInitrd(t)
	dir := filepath.Dir(art)
	same := filepath.Join(dir, "same.img")
	mustFledge(t, dir, nil, "pack", art, "-o", same)
	if a, b := must(os.ReadFile(art)), must(os.ReadFile(same)); !bytes.Equal(a, b) {
		t.Errorf("pack without edits: %d bytes, differs from the initrd's %d", len(b), len(a))
	}

	m := startMount(t, "/", newMountpoint(t), art)
	shell(t, m.mnt, `sed -i '2i echo fledge-marker-17; /usr/bin/busybox poweroff -f' init
rm etc/fstab
chmod 700 scripts/init-top/blacklist`)
	m.umount(t)
	out := filepath.Join(dir, "new.img")
	mustFledge(t, dir, nil, "pack", art, "-o", out)

	was, err := packer.Segments(art)
	if err != nil {
		t.Fatal(err)
	}
	now, err := packer.Segments(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != 2 || now[0] != was[0] || now[1].Compression != "zstd" || now[1].Offset != was[1].Offset {
		t.Fatalf("segments of the re-pack %+v; want the early one as it was, then zstd at %d (the initrd's: %+v)", now, was[1].Offset, was)
	}
	if a, b := must(os.ReadFile(art)), must(os.ReadFile(out)); !bytes.Equal(a[:was[0].CompressedBytes], b[:was[0].CompressedBytes]) {
		t.Errorf("the early archive is not copied byte for byte")
	}
	r := fledge(t, dir, nil, "diff", art, out)
	want := "removed  /etc/fstab  (file)\nchanged  /init  (content sha256 "
	if r.code != 1 || len(strings.Split(strings.TrimSpace(r.stdout), "\n")) != 3 || !strings.HasPrefix(r.stdout, want) ||
		!strings.HasSuffix(r.stdout, "changed  /scripts/init-top/blacklist  (mode 0755 -> 0700)\n") {
		t.Errorf("diff of the initrd and its re-pack: exit %d\n%s\nwant exactly the three edits", r.code, r.stdout)
	}
	// 512 MB: the unpacked initrd alone takes 130 MB.
	res, err := qemu.Boot(context.Background(), qemu.Config{
		Kernel: testKernel(t), Initrd: out, MemoryMB: 512,
		Expect: regexp.MustCompile("^fledge-marker-17$"), Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Errorf("boot of the re-pack: %s\nconsole:\n%s", res.Reason, res.Output)
	}
}
