package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asUser runs a shell command as uid:gid with no supplementary groups.
func asUser(uid uint32, script string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const nobody = 65534

// writesAsNobody are the changes nobody tries: in the image's /tmp (1777,
// where the permissions allow them) and in root's folders, of every kind.
var writesAsNobody = []string{
	"touch tmp/new",
	"mkdir tmp/dir",
	"mkfifo tmp/fifo",
	"ln -s /etc/passwd tmp/link",
	"echo x > tmp/redirect",
	"touch etc/new",
	"mkdir etc/dir",
	"rm -f usr/bin/hello",
	"mv usr/bin/hello tmp/moved",
	"chmod 777 tmp",
}

// With the default --share=read, nobody browses a mount root started
// (list and read, with the image's permissions) but every write it tries
// is refused, even where the permissions would allow it; root still writes.
// The user named by SUDO_UID writes too.
func TestMountShareRead(t *testing.T) {
	dir := copyExample(t, "default")
	mnt := sharedMountpoint(t)
	m := startMount(t, dir, mnt)
	if out, err := asUser(nobody, "cd "+mnt+" && ls -la / tmp usr/bin >/dev/null && cat usr/bin/hello bin/busybox >/dev/null"); err != nil {
		t.Errorf("nobody cannot browse the mount: %v\n%s", err, out)
	}
	for _, w := range writesAsNobody {
		if out, err := asUser(nobody, "cd "+mnt+" && "+w); err == nil {
			t.Errorf("nobody could %q in a --share=read mount:\n%s", w, out)
		}
	}
	if d := mustFledge(t, dir, nil, "diff"); d.stdout != "" {
		t.Errorf("nobody's writes left edits:\n%s", d.stdout)
	}
	if err := os.WriteFile(filepath.Join(mnt, "tmp", "by-root"), nil, 0o644); err != nil {
		t.Errorf("root cannot write: %v", err)
	}
	m.umount(t)

	sudo := startMountEnv(t, dir, mnt, []string{"SUDO_UID=65534"})
	if out, err := asUser(nobody, "cd "+mnt+" && touch tmp/by-sudo-user"); err != nil {
		t.Errorf("the SUDO_UID user cannot write: %v\n%s", err, out)
	}
	if out, err := asUser(65533, "cd "+mnt+" && touch tmp/by-other"); err == nil {
		t.Errorf("a user other than SUDO_UID could write:\n%s", out)
	}
	sudo.umount(t)
}

// --share=none keeps other users out; --share=write lets them write as the
// permissions allow (the image's /tmp), and still not where they do not.
func TestMountShareNoneAndWrite(t *testing.T) {
	dir := copyExample(t, "default")
	mnt := sharedMountpoint(t)
	m := startMount(t, dir, mnt, "--share=none")
	if out, err := asUser(nobody, "ls "+mnt); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody lists a --share=none mount: %v\n%s", err, out)
	}
	m.umount(t)

	m = startMount(t, dir, mnt, "--share=write")
	if out, err := asUser(nobody, "cd "+mnt+" && touch tmp/new && mkdir tmp/dir"); err != nil {
		t.Errorf("nobody cannot write to /tmp of a --share=write mount: %v\n%s", err, out)
	}
	if out, err := asUser(nobody, "cd "+mnt+" && touch etc/new"); err == nil {
		t.Errorf("nobody wrote into root's /etc:\n%s", out)
	}
	m.umount(t)
	d := fledge(t, dir, nil, "diff")
	if !strings.Contains(d.stdout, "/tmp/new") || strings.Contains(d.stdout, "/etc/new") {
		t.Errorf("fledge diff after nobody's writes:\n%s", d.stdout)
	}
}
