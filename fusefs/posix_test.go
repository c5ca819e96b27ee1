package fusefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
