package fusefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The passthrough trap (DESIGN §4): the kernel keeps one backing file per
// inode, so a write open after a lower host file was opened by passthrough
// could land in the host file. It must not, ever.
func TestPassthroughTrapIsClosed(t *testing.T) {
	w := passthroughWorkspace(t)
	app := w.path("usr/bin/app")
	ro, err := os.Open(app)
	must(t, err)
	defer ro.Close() // an open file would keep the mount busy after a failure
	buf := make([]byte, 3)
	_, err = ro.ReadAt(buf, 0)
	must(t, err)

	// Writing while the reader holds the passthrough backing is refused
	// before anything is copied up.
	if _, err := os.OpenFile(app, os.O_RDWR, 0); !errors.Is(err, syscall.ETXTBSY) {
		t.Fatalf("write open during a passthrough read: %v, want ETXTBSY", err)
	}
	if _, err := os.Lstat(filepath.Join(w.edits.Dir(), "usr", "bin", "app")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused open left a copy-up: %v", err)
	}
	// Metadata changes copy up without touching the host file.
	must(t, os.Chmod(app, 0o700))
	if fi, _ := os.Stat(w.host); fi.Mode().Perm() != 0o755 {
		t.Fatalf("chmod through the mount changed the host file to %v", fi.Mode())
	}
	must(t, ro.Close())

	rw, err := os.OpenFile(app, os.O_RDWR, 0)
	must(t, err)
	_, err = rw.WriteAt([]byte("APP"), 0)
	must(t, err)
	must(t, rw.Close())
	if got, _ := os.ReadFile(w.host); string(got) != "app v1\n" {
		t.Fatalf("host file changed to %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(w.edits.Dir(), "usr", "bin", "app")); string(got) != "APP v1\n" {
		t.Fatalf("edit holds %q, want the write", got)
	}
	if got, _ := os.ReadFile(app); string(got) != "APP v1\n" {
		t.Fatalf("a new reader sees %q, want the edit", got)
	}
}

// Readers opening and closing a lower file by passthrough while a writer
// opens it: whatever interleaving the kernel sees, the host file stays as
// it was (a write open either lands in the edit or is refused).
func TestPassthroughTrapUnderRace(t *testing.T) {
	w := newWorkspace(t)
	for i := range 20 {
		name := filepath.Join(w.hostDir, "r.txt")
		must(t, os.WriteFile(name, []byte("original"), 0o644))
		w.fsys.changed()
		guest := w.path("opt/data/r.txt")
		must(t, w.edits.Reset("/opt/data/r.txt"))
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 20 {
					if f, err := os.Open(guest); err == nil {
						f.Read(make([]byte, 4))
						f.Close()
					}
				}
			})
		}
		wrote := false
		for range 50 {
			f, err := os.OpenFile(guest, os.O_WRONLY, 0)
			if err != nil {
				continue
			}
			_, err = f.WriteAt([]byte("EDIT"), 0)
			f.Close()
			if err == nil {
				wrote = true
				break
			}
		}
		wg.Wait()
		if got, _ := os.ReadFile(name); string(got) != "original" {
			t.Fatalf("round %d: host file now %q", i, got)
		}
		if !wrote {
			t.Logf("round %d: every write open was refused", i)
		}
	}
}

// The trap cannot occur for a file that lives in the edits layer: its
// every open, reading or writing, is of that one host file, so the backing
// a node keeps is the edit itself. Writes to an edit therefore go by
// passthrough: they reach the edit while the server's write path is held
// up (a pack in another process holds the edits' lock), which a write
// through the server could not. A reader and a second writer share the
// backing, and a writer of a file a reader holds through the server
// (lower content without a host file) is served through the server too,
// not refused.
func TestEditsAreWrittenByPassthrough(t *testing.T) {
	w := passthroughWorkspace(t)
	p := w.path("etc/new")
	f, err := os.Create(p)
	must(t, err)
	defer f.Close()
	reader, err := os.Open(p)
	must(t, err)
	defer reader.Close()
	second, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	defer second.Close()

	lock, err := os.Open(w.edits.Dir() + ".lock")
	must(t, err)
	defer lock.Close()
	must(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX))
	wrote := make(chan error, 1)
	go func() {
		_, err := f.WriteAt([]byte("first "), 0)
		if err == nil {
			_, err = second.WriteAt([]byte("second"), 6)
		}
		wrote <- err
	}()
	select {
	case err := <-wrote:
		must(t, err)
	case <-time.After(5 * time.Second):
		unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		t.Fatal("writes to an edit waited for the edits' lock: they went through the server")
	}
	if got, _ := os.ReadFile(filepath.Join(w.edits.Dir(), "etc", "new")); string(got) != "first second" {
		t.Errorf("the edit holds %q while the lock is held, want both writes", got)
	}
	must(t, unix.Flock(int(lock.Fd()), unix.LOCK_UN))
	buf := make([]byte, 12)
	if _, err := reader.ReadAt(buf, 0); err != nil || string(buf) != "first second" {
		t.Errorf("a reader of the edit reads %q, %v", buf, err)
	}

	motd := w.path("etc/motd")
	r, err := os.Open(motd)
	must(t, err)
	defer r.Close()
	wr, err := os.OpenFile(motd, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatalf("write open of a file a reader holds through the server: %v", err)
	}
	_, err = wr.WriteString("edited\n")
	must(t, err)
	must(t, wr.Close())
	if got, _ := os.ReadFile(motd); string(got) != "edited\n" {
		t.Errorf("/etc/motd reads %q after the write", got)
	}
}

// passthroughWorkspace is a mounted workspace whose kernel took FUSE
// passthrough, without which the trap cannot be exercised.
func passthroughWorkspace(t *testing.T) *workspace {
	w := newWorkspace(t)
	if !w.fsys.passthrough.Load() {
		t.Fatal("this kernel did not take FUSE passthrough (needs Linux >= 6.9 and root); the trap cannot be exercised")
	}
	return w
}
