package fusefs

import (
	"bytes"
	"encoding/binary"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A folder made and entered through the mount keeps its path: the kernel
// made it itself, so the mount must not drop its name afterwards (which
// would make the getcwd of a process inside fail).
func TestEnteredFolderKeepsItsPath(t *testing.T) {
	w := newWorkspace(t)
	out, err := exec.Command("/bin/sh", "-c", "cd "+w.path("tmp")+" && mkdir d && cd d && sleep 0.3 && /bin/pwd -P").CombinedOutput()
	if want := w.path("tmp/d") + "\n"; err != nil || string(out) != want {
		t.Errorf("pwd in a folder just made: %v %q, want %q", err, out, want)
	}
}

// A file unlinked while open stays readable and writable through its
// handle, reports nlink 0, and keeps its data until the last close.
func TestUnlinkedOpenFile(t *testing.T) {
	w := newWorkspace(t)
	f, err := os.OpenFile(w.path("tmp/f"), os.O_CREATE|os.O_RDWR, 0o644)
	must(t, err)
	defer f.Close()
	_, err = f.WriteString("before")
	must(t, err)
	must(t, os.Remove(w.path("tmp/f")))
	_, err = f.WriteString(" after")
	must(t, err)
	var st syscall.Stat_t
	must(t, syscall.Fstat(int(f.Fd()), &st))
	if st.Nlink != 0 || st.Size != 12 {
		t.Errorf("fstat after unlink: nlink %d size %d, want 0 12", st.Nlink, st.Size)
	}
	b := make([]byte, 32)
	n, err := f.ReadAt(b, 0)
	if string(b[:n]) != "before after" {
		t.Errorf("read after unlink: %q %v", b[:n], err)
	}
	must(t, f.Truncate(3))
	must(t, syscall.Fstat(int(f.Fd()), &st))
	if st.Size != 3 {
		t.Errorf("ftruncate after unlink: size %d", st.Size)
	}
}

// ctime follows every change of metadata; hard links of every type count
// their names; atime set by utimensat is kept; names of 255 bytes are
// stored, longer ones refused.
func TestPosixAttributes(t *testing.T) {
	w := newWorkspace(t)
	p := w.path("tmp/c")
	must(t, os.WriteFile(p, nil, 0o644))
	ctime := func(p string) time.Time {
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		return time.Unix(st.Ctim.Unix())
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"chmod", func() error { return os.Chmod(p, 0o600) }},
		{"chown", func() error { return os.Chown(p, 1, 1) }},
		{"link", func() error { return os.Link(p, w.path("tmp/c2")) }},
		{"unlink", func() error { return os.Remove(w.path("tmp/c2")) }},
		{"rename", func() error { return os.Rename(p, w.path("tmp/c3")) }},
	}
	for _, s := range steps {
		before := ctime(p)
		time.Sleep(20 * time.Millisecond)
		must(t, s.do())
		if s.what == "rename" {
			p = w.path("tmp/c3")
		}
		if after := ctime(p); !after.After(before) {
			t.Errorf("%s left ctime at %v", s.what, after)
		}
	}

	must(t, syscall.Mkfifo(w.path("tmp/fifo"), 0o644))
	must(t, os.Link(w.path("tmp/fifo"), w.path("tmp/fifo2")))
	var st syscall.Stat_t
	must(t, syscall.Lstat(w.path("tmp/fifo"), &st))
	if st.Nlink != 2 {
		t.Errorf("a hard-linked FIFO reports nlink %d", st.Nlink)
	}

	at := time.Unix(1900000000, 0)
	must(t, os.Chtimes(p, at, time.Unix(1950000000, 0)))
	must(t, syscall.Lstat(p, &st))
	if st.Atim.Sec != at.Unix() {
		t.Errorf("atime %d after utimensat, want %d", st.Atim.Sec, at.Unix())
	}

	long := strings.Repeat("n", 255)
	must(t, os.WriteFile(w.path(filepath.Join("tmp", long)), []byte("x"), 0o644))
	must(t, os.Remove(w.path(filepath.Join("tmp", long))))
	if err := os.WriteFile(w.path(filepath.Join("tmp", long+"x")), nil, 0o644); !strings.Contains(err.Error(), "file name too long") {
		t.Errorf("a 256-byte name: %v", err)
	}
}

// A file made through the mount and changed at once, as tar x does it
// (create, write, times, owner, mode), is changed without a view update
// per request: each reply must still say what the view says once it has
// the changes, the kernel's stat and its listing must agree on the inode,
// and chown must clear setuid, as on a disk.
func TestMadeFileChangesReachTheView(t *testing.T) {
	w := newWorkspace(t)
	p := w.path("tmp/made")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	must(t, err)
	_, err = f.Write([]byte("made\n"))
	must(t, err)
	mtime := time.Unix(1700000000, 5)
	must(t, os.Chtimes(p, mtime, mtime))
	must(t, f.Chmod(0o4750))
	must(t, f.Chown(7, 8))
	var st syscall.Stat_t
	must(t, syscall.Fstat(int(f.Fd()), &st))
	must(t, f.Close())
	if st.Mode != syscall.S_IFREG|0o750 || st.Uid != 7 || st.Gid != 8 || st.Size != 5 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("fstat after the changes: mode %o, owner %d:%d, size %d, mtime %d", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec)
	}
	v, err := w.fsys.View()
	must(t, err)
	vn, ok := v.Get("/tmp/made")
	if !ok {
		t.Fatal("the view has no /tmp/made")
	}
	if vn.UnixMode() != st.Mode || vn.UID != 7 || vn.GID != 8 || vn.Size != 5 || !v.MTime(vn).Equal(mtime) {
		t.Errorf("view: mode %o, owner %d:%d, size %d, mtime %v", vn.UnixMode(), vn.UID, vn.GID, vn.Size, v.MTime(vn))
	}
	if listed := direntIno(t, w.path("tmp"), "made"); listed != st.Ino {
		t.Errorf("inode %d when created, %d when listed", st.Ino, listed)
	}
}

// direntIno returns the inode number getdents gives name in dir.
func direntIno(t *testing.T, dir, name string) uint64 {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	must(t, err)
	defer syscall.Close(fd)
	buf := make([]byte, 1<<16)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		must(t, err)
		if n == 0 {
			t.Fatalf("%s is not listed in %s", name, dir)
		}
		// struct linux_dirent64: ino, off, reclen, type, name.
		for b := buf[:n]; len(b) > 0; {
			reclen := binary.NativeEndian.Uint16(b[16:18])
			got, _, _ := strings.Cut(string(b[19:reclen]), "\x00")
			if got == name {
				return binary.NativeEndian.Uint64(b[:8])
			}
			b = b[reclen:]
		}
	}
}

// The mount clears setuid and setgid itself (the kernel leaves it to the
// mount, so that it need not ask for fresh attributes before every chown):
// a write or truncate by another user than root clears setuid, and setgid
// where the group may execute; root's writes keep both; a chown asks the
// mount nothing more than the chown itself.
func TestSetIDBits(t *testing.T) {
	w := setupWorkspace(t)
	var reqs bytes.Buffer
	w.opts.Share, w.opts.Debug, w.opts.Logger = ShareWrite, true, log.New(&reqs, "", 0)
	w.mount(t)
	// nobody must get to the mountpoint.
	for d := filepath.Dir(w.mnt); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	p := w.path("tmp/s")
	must(t, os.WriteFile(p, []byte("x"), 0o644))
	nobody := func(script string) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script, "sh", p)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s as nobody: %v\n%s", script, err, out)
		}
	}
	for _, c := range []struct {
		what      string
		mode, out uint32
		do        func()
	}{
		{"root's write", 0o6777, 0o6777, func() {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.Write([]byte("x"))
			must(t, err)
			must(t, f.Close())
		}},
		{"a write by nobody", 0o6777, 0o777, func() { nobody(`printf x >> "$1"`) }},
		{"a truncate by nobody", 0o6777, 0o777, func() { nobody(`truncate -s 1 "$1"`) }},
		{"a write by nobody, setgid without group execute", 0o2766, 0o2766, func() { nobody(`printf x >> "$1"`) }},
	} {
		must(t, unix.Chmod(p, c.mode))
		c.do()
		var st syscall.Stat_t
		must(t, syscall.Stat(p, &st))
		if st.Mode&0o7777 != c.out {
			t.Errorf("after %s of a %04o file: mode %04o, want %04o", c.what, c.mode, st.Mode&0o7777, c.out)
		}
		v, err := w.fsys.View()
		must(t, err)
		if vn, ok := v.Get("/tmp/s"); !ok || vn.UnixMode()&0o7777 != c.out {
			t.Errorf("after %s of a %04o file: the view has mode %04o, want %04o", c.what, c.mode, vn.UnixMode()&0o7777, c.out)
		}
	}

	f, err := os.Open(p)
	must(t, err)
	_, _ = os.Lstat(w.path("tmp/chowns-start"))
	for range 5 {
		must(t, f.Chown(0, 0))
	}
	must(t, f.Close())
	w.unmount(t)
	log := reqs.String()
	start := strings.Index(log, `"chowns-start"`)
	if start < 0 {
		t.Fatal("the lookup marking the chowns is not in the request log")
	}
	if n := strings.Count(log[start:], " GETATTR "); n > 0 {
		t.Errorf("%d GETATTR requests for 5 chowns, want none", n)
	}
}
