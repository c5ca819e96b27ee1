package fusefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay/edits"
)

// What readers expect: ls -l, stat, find, cat, readlink, du and getfattr
// (with --xattrs) show the image as it will be packed.
func TestReadersSeeThePackedImage(t *testing.T) {
	w := newXattrWorkspace(t)
	for _, c := range []struct{ args, want string }{
		{"stat -c %A|%u|%g|%s|%Y|%N " + w.path("bin/sh"), "lrwxrwxrwx|0|0|7|0|'" + w.path("bin/sh") + "' -> 'busybox'"},
		{"stat -c %A|%s|%Y " + w.path("usr/bin/app"), "-rwxr-xr-x|7|0"},
		{"stat -c %A|%t|%T " + w.path("dev/console"), "crw-------|5|1"},
		{"stat -c %A " + w.path("tmp"), "drwxrwxrwt"},
		{"stat -c %A " + w.path("root"), "drwx------"},
		{"readlink " + w.path("bin/ls"), "busybox"},
		{"cat " + w.path("opt/data/sub/b.txt"), "beta"},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("usr/bin/app"), "mappings host:" + w.host},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("opt/data/sub"), "mappings host:" + filepath.Join(w.hostDir, "sub")},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("bin/busybox"), "busybox"},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("etc"), "skeleton"},
	} {
		args := strings.Fields(c.args)
		if got := strings.TrimSpace(run(t, args[0], args[1:]...)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.args, got, c.want)
		}
	}
	if got := run(t, "ls", "-a", w.path("bin")); got != ".\n..\nbusybox\nls\nsh\n" {
		t.Errorf("ls -a bin: %q", got)
	}
	find := run(t, "find", w.mnt, "-printf", "%P %y %m\n")
	for _, want := range []string{"bin/busybox f 755", "bin/sh l 777", "dev/null c 666", "opt/data/sub/b.txt f 644", "usr/bin/app f 755"} {
		if !strings.Contains(find, want+"\n") {
			t.Errorf("find lacks %q:\n%s", want, find)
		}
	}
	if du := strings.Fields(run(t, "du", "-sb", w.path("opt/data")))[0]; du == "0" {
		t.Errorf("du -sb over a folder with files says 0")
	}
	must(t, os.WriteFile(w.path("etc/edited"), []byte("x"), 0o644))
	if got := strings.TrimSpace(run(t, "getfattr", "--absolute-names", "--only-values", "-n", "user.fledge.layer", w.path("etc/edited"))); got != "edits host:"+filepath.Join(w.edits.Dir(), "etc", "edited") {
		t.Errorf("provenance of an edit: %q", got)
	}
}

// Host changes show through the mount within a second, even for entries
// the kernel has already looked up and cached: a mapped file replaced the
// way build tools do it (written aside, renamed over), files added to and
// removed from a mapped folder, a new subfolder, and a mode change.
func TestMappingsAreLive(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"watched", Options{}},
		{"watched-no-passthrough", Options{NoPassthrough: true}},
		{"polled", Options{Poll: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := setupWorkspace(t)
			w.opts = c.o
			w.mount(t)
			if got := w.fsys.watching.Load(); got == c.o.Poll {
				t.Fatalf("watching = %v with Poll = %v", got, c.o.Poll)
			}
			// Let the kernel cache all of it first.
			if got, _ := os.ReadFile(w.path("usr/bin/app")); string(got) != "app v1\n" {
				t.Fatalf("before: %q", got)
			}
			for _, p := range []string{"opt/data/a.txt", "opt/data/sub/b.txt", "opt/data/gone"} {
				_, _ = os.Stat(w.path(p))
			}
			_ = run(t, "ls", "-lR", w.path("opt/data"))

			must(t, os.WriteFile(w.host+".new", []byte("app version 2, longer\n"), 0o755))
			must(t, os.Rename(w.host+".new", w.host))
			must(t, os.WriteFile(filepath.Join(w.hostDir, "new.txt"), []byte("n"), 0o644))
			must(t, os.Remove(filepath.Join(w.hostDir, "sub", "b.txt")))
			must(t, os.MkdirAll(filepath.Join(w.hostDir, "gone", "deeper"), 0o755))
			must(t, os.WriteFile(filepath.Join(w.hostDir, "gone", "deeper", "c.txt"), []byte("c"), 0o644))
			must(t, os.Chmod(filepath.Join(w.hostDir, "a.txt"), 0o700))

			var state string
			deadline := time.Now().Add(time.Second)
			for {
				state = liveState(w)
				if state == "app 22 app version 2, longer\n|new.txt 1|b.txt gone|c.txt 1|a.txt -rwxr-xr-x|data a.txt,gone,new.txt,sub|sub " {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 1s the mount shows %q", state)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// A file added in a folder that appeared after the mount (so
			// the new folder is watched too), whose listing the kernel
			// holds: only the listing is read until it shows.
			deeper := w.path("opt/data/gone/deeper")
			if got := names(deeper); got != "c.txt" {
				t.Fatalf("listing of a new mapped folder: %q", got)
			}
			must(t, os.WriteFile(filepath.Join(w.hostDir, "gone", "deeper", "d.txt"), []byte("dd"), 0o644))
			deadline = time.Now().Add(time.Second)
			for names(deeper) != "c.txt,d.txt" {
				if time.Now().After(deadline) {
					t.Fatalf("a file added in a new mapped folder: after 1s the folder lists %q", names(deeper))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// liveState sums up what TestMappingsAreLive changes, as the mount shows it.
func liveState(w *workspace) string {
	size := func(p string) string {
		fi, err := os.Stat(w.path(p))
		if err != nil {
			return "gone"
		}
		return fmt.Sprint(fi.Size())
	}
	app, _ := os.ReadFile(w.path("usr/bin/app"))
	mode := "?"
	if fi, err := os.Stat(w.path("opt/data/a.txt")); err == nil {
		mode = fi.Mode().String()
	}
	return fmt.Sprintf("app %s %s|new.txt %s|b.txt %s|c.txt %s|a.txt %s|data %s|sub %s", size("usr/bin/app"), app,
		size("opt/data/new.txt"), size("opt/data/sub/b.txt"), size("opt/data/gone/deeper/c.txt"), mode,
		names(w.path("opt/data")), names(w.path("opt/data/sub")))
}

// names lists folder dir, comma-separated ("" if it cannot be read).
func names(dir string) string {
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return strings.Join(out, ",")
}

// `fledge reset` in another process changes the edits under a live mount;
// the mount shows the lower layers again within a second, though the kernel
// had cached the edit.
func TestResetElsewhereShows(t *testing.T) {
	w := newWorkspace(t)
	must(t, os.WriteFile(w.path("etc/motd"), []byte("edited motd\n"), 0o644))
	if fi, err := os.Stat(w.path("etc/motd")); err != nil || fi.Size() != 12 {
		t.Fatalf("edit: %v %v", fi, err)
	}
	// Another process's view of the workspace: its own Edits, its own lock.
	must(t, edits.Open(w.edits.Dir()).Reset("/etc/motd"))
	deadline := time.Now().Add(time.Second)
	for {
		got, _ := os.ReadFile(w.path("etc/motd"))
		fi, err := os.Stat(w.path("etc/motd"))
		if string(got) == "hello\n" && err == nil && fi.Size() == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reset elsewhere, 1s later the mount shows %q (%v, %v)", got, fi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A mapped file that the host swaps for a FIFO before the view notices is
// refused at open, with and without passthrough: fledge's own open of the
// host file must not wait for a writer that never comes.
func TestMappedFileSwappedForAFIFOIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"passthrough", Options{Poll: true}},
		{"no-passthrough", Options{Poll: true, NoPassthrough: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := setupWorkspace(t)
			w.opts = c.o
			w.mount(t)
			// The view is fresh for half a second (Poll): it still says
			// the file is regular when the open below reaches fledge.
			if _, err := os.Stat(w.path("usr/bin/app")); err != nil {
				t.Fatal(err)
			}
			fifo := filepath.Join(w.dir, "fifo")
			must(t, unix.Mkfifo(fifo, 0o755))
			must(t, os.Rename(fifo, w.host))
			done := make(chan error, 1)
			go func() {
				// Non-blocking, so a FIFO the kernel already took it for
				// would not hold the test.
				f, err := os.OpenFile(w.path("usr/bin/app"), os.O_RDONLY|unix.O_NONBLOCK, 0)
				if err == nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				// EIO from fledge's refusal; EINVAL where a slow machine let
				// the view see the FIFO first.
				if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EINVAL) {
					t.Errorf("open of a mapped file swapped for a FIFO: %v, want EIO", err)
				}
			case <-time.After(10 * time.Second):
				// Let the blocked open in fledge go, so the mount can stop.
				if f, err := os.OpenFile(w.host, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatal("open of a mapped file swapped for a FIFO waited for a writer")
			}
		})
	}
}
