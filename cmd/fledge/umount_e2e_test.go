package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fledge umount refuses, in one line, a mount that is not fledge's, leaves
// it mounted and never suggests forcing it.
func TestUmountRefusesOtherMounts(t *testing.T) {
	needRoot(t)
	tmp := newMountpoint(t)
	if err := syscall.Mount("none", tmp, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(tmp, syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(tmp, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mp := range []string{tmp, "/proc"} {
		r := fledge(t, "/", nil, "umount", mp)
		msg := strings.TrimSuffix(r.stderr, "\n")
		if r.code == 0 || !strings.Contains(msg, "not a fledge mount") || strings.Contains(msg, "--lazy") || strings.Contains(msg, "\n") {
			t.Errorf("fledge umount %s: exit %d, stderr:\n%s\nwant one line refusing it as not a fledge mount, without --lazy", mp, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "kept")); err != nil {
		t.Errorf("the tmpfs at %s is gone after fledge umount: %v", tmp, err)
	}
}

// A fledge mount whose server was killed is still cleared by fledge umount.
func TestUmountClearsStaleMount(t *testing.T) {
	m := startMount(t, copyExample(t, "default"), newMountpoint(t))
	m.cmd.Process.Kill()
	m.cmd.Wait()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(m.mnt, &sfs); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after kill -9 the mountpoint gives %v, want ENOTCONN (a stale mount)", err)
	}
	mustFledge(t, "/", nil, "umount", m.mnt)
	if err := syscall.Statfs(m.mnt, &sfs); err != nil {
		t.Fatalf("after fledge umount of the stale mount: %v", err)
	}
	var st, pst syscall.Stat_t
	syscall.Stat(m.mnt, &st)
	syscall.Stat(filepath.Dir(m.mnt), &pst)
	if st.Dev != pst.Dev {
		t.Fatalf("%s is still a mountpoint after fledge umount", m.mnt)
	}
}
