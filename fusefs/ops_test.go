package fusefs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every editing operation, checked through the mount, again after a
// remount (the edit lives on disk), and against the host sources, which
// must not change.
func TestEditOperations(t *testing.T) {
	stamp := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct {
		name  string
		do    func(t *testing.T, w *workspace)
		check func(t *testing.T, w *workspace)
	}{
		{"create and write", func(t *testing.T, w *workspace) {
			must(t, os.WriteFile(w.path("etc/new.conf"), []byte("key=1\n"), 0o640))
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("etc/new.conf"), "key=1\n", 0o640)
		}},
		{"append to a lower file", func(t *testing.T, w *workspace) {
			f, err := os.OpenFile(w.path("etc/motd"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString("more\n")
			must(t, err)
			must(t, f.Close())
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("etc/motd"), "hello\nmore\n", 0o644)
		}},
		{"truncate a mapped file", func(t *testing.T, w *workspace) {
			must(t, os.Truncate(w.path("usr/bin/app"), 3))
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("usr/bin/app"), "app", 0o755)
		}},
		{"overwrite a mapped file", func(t *testing.T, w *workspace) {
			must(t, os.WriteFile(w.path("opt/data/a.txt"), []byte("ALPHA"), 0))
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("opt/data/a.txt"), "ALPHA", 0o644)
		}},
		{"chmod", func(t *testing.T, w *workspace) {
			must(t, os.Chmod(w.path("usr/bin/app"), 0o711|fs.ModeSetuid))
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("usr/bin/app"), "app v1\n", 0o711|fs.ModeSetuid)
		}},
		{"chown", func(t *testing.T, w *workspace) {
			must(t, os.Lchown(w.path("etc/motd"), 1000, 1001))
			must(t, os.Lchown(w.path("bin/sh"), 5, 6))
		}, func(t *testing.T, w *workspace) {
			wantOwner(t, w.path("etc/motd"), 1000, 1001)
			wantOwner(t, w.path("bin/sh"), 5, 6)
		}},
		{"utimes", func(t *testing.T, w *workspace) {
			must(t, os.Chtimes(w.path("etc/motd"), stamp, stamp))
		}, func(t *testing.T, w *workspace) {
			fi, err := os.Stat(w.path("etc/motd"))
			must(t, err)
			if !fi.ModTime().Equal(stamp) {
				t.Errorf("mtime %v, want %v", fi.ModTime(), stamp)
			}
		}},
		{"chmod and utimes of the root", func(t *testing.T, w *workspace) {
			must(t, os.Chmod(w.mnt, 0o750))
			must(t, os.Chtimes(w.mnt, stamp, stamp))
		}, func(t *testing.T, w *workspace) {
			wantMode(t, w.mnt, fs.ModeDir|0o750)
			if fi, err := os.Stat(w.mnt); err != nil || !fi.ModTime().Equal(stamp) {
				t.Errorf("root mtime %v (%v), want %v", fi.ModTime(), err, stamp)
			}
		}},
		{"copy_file_range from a mapped file, an edit and an archive's bytes", func(t *testing.T, w *workspace) {
			must(t, os.WriteFile(w.path("etc/edit"), []byte("0123456789"), 0o644))
			for _, c := range []struct {
				from, to string
				off      int64
			}{{"opt/data/a.txt", "etc/c1", 0}, {"etc/edit", "etc/c2", 3}, {"etc/motd", "etc/c3", 0}} {
				in, err := os.Open(w.path(c.from))
				must(t, err)
				out, err := os.OpenFile(w.path(c.to), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				must(t, err)
				off := c.off
				for {
					n, err := unix.CopyFileRange(int(in.Fd()), &off, int(out.Fd()), nil, 1<<20, 0)
					must(t, err)
					if n == 0 {
						break
					}
				}
				must(t, out.Close())
				must(t, in.Close())
			}
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("etc/c1"), "alpha\n", 0o644)
			wantFile(t, w.path("etc/c2"), "3456789", 0o644)
			wantFile(t, w.path("etc/c3"), "hello\n", 0o644)
		}},
		{"mkdir", func(t *testing.T, w *workspace) {
			must(t, os.Mkdir(w.path("srv"), 0o750))
			must(t, os.WriteFile(w.path("srv/x"), nil, 0o600))
		}, func(t *testing.T, w *workspace) {
			wantMode(t, w.path("srv"), fs.ModeDir|0o750)
			wantFile(t, w.path("srv/x"), "", 0o600)
		}},
		{"rmdir of a lower dir", func(t *testing.T, w *workspace) {
			must(t, os.Remove(w.path("mnt")))
		}, func(t *testing.T, w *workspace) {
			wantGone(t, w.path("mnt"))
		}},
		{"rmdir refuses a non-empty dir", func(t *testing.T, w *workspace) {
			if err := os.Remove(w.path("opt/data")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
				t.Fatalf("rmdir of a full directory: %v, want ENOTEMPTY", err)
			}
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("opt/data/a.txt"), "alpha\n", 0o644)
		}},
		{"unlink a busybox applet link", func(t *testing.T, w *workspace) {
			must(t, os.Remove(w.path("bin/ls")))
		}, func(t *testing.T, w *workspace) {
			wantGone(t, w.path("bin/ls"))
			wantLink(t, w.path("bin/sh"), "busybox")
		}},
		{"unlink then recreate", func(t *testing.T, w *workspace) {
			must(t, os.Remove(w.path("etc/motd")))
			wantGone(t, w.path("etc/motd"))
			must(t, os.WriteFile(w.path("etc/motd"), []byte("new"), 0o600))
		}, func(t *testing.T, w *workspace) {
			wantFile(t, w.path("etc/motd"), "new", 0o600)
		}},
		{"rename a file", func(t *testing.T, w *workspace) {
			must(t, os.Rename(w.path("usr/bin/app"), w.path("bin/app2")))
		}, func(t *testing.T, w *workspace) {
			wantGone(t, w.path("usr/bin/app"))
			wantFile(t, w.path("bin/app2"), "app v1\n", 0o755)
		}},
		{"rename over a file", func(t *testing.T, w *workspace) {
			must(t, os.Rename(w.path("etc/motd"), w.path("opt/data/a.txt")))
		}, func(t *testing.T, w *workspace) {
			wantGone(t, w.path("etc/motd"))
			wantFile(t, w.path("opt/data/a.txt"), "hello\n", 0o644)
		}},
		{"rename a dir", func(t *testing.T, w *workspace) {
			must(t, os.Remove(w.path("opt/data/a.txt")))
			must(t, os.Rename(w.path("opt/data"), w.path("srv")))
		}, func(t *testing.T, w *workspace) {
			wantGone(t, w.path("opt/data"))
			wantFile(t, w.path("srv/sub/b.txt"), "beta\n", 0o644)
			wantGone(t, w.path("srv/a.txt"))
			wantNames(t, w.path("srv"), "sub")
		}},
		{"rename a dir onto a deleted lower dir", func(t *testing.T, w *workspace) {
			must(t, os.Mkdir(w.path("tmp/new"), 0o755))
			must(t, os.WriteFile(w.path("tmp/new/only"), []byte("1"), 0o644))
			must(t, os.Rename(w.path("opt/data/sub"), w.path("var/sub")))
			must(t, os.Rename(w.path("tmp/new"), w.path("opt/data/sub")))
		}, func(t *testing.T, w *workspace) {
			wantNames(t, w.path("opt/data/sub"), "only")
			wantFile(t, w.path("var/sub/b.txt"), "beta\n", 0o644)
		}},
		{"symlink", func(t *testing.T, w *workspace) {
			must(t, os.Symlink("/usr/bin/app", w.path("bin/app")))
		}, func(t *testing.T, w *workspace) {
			wantLink(t, w.path("bin/app"), "/usr/bin/app")
		}},
		{"hard link", func(t *testing.T, w *workspace) {
			must(t, os.Link(w.path("bin/busybox"), w.path("sbin/init")))
		}, func(t *testing.T, w *workspace) {
			a, b := statT(t, w.path("bin/busybox")), statT(t, w.path("sbin/init"))
			if a.Ino != b.Ino || a.Nlink != 2 {
				t.Errorf("hard link: inodes %d and %d, nlink %d; want one inode with 2 links", a.Ino, b.Ino, a.Nlink)
			}
			wantFile(t, w.path("sbin/init"), "#!busybox\n", 0o755)
		}},
		{"mknod", func(t *testing.T, w *workspace) {
			must(t, unix.Mknod(w.path("dev/ttyS0"), unix.S_IFCHR|0o600, int(unix.Mkdev(4, 64))))
			must(t, unix.Mknod(w.path("dev/sda"), unix.S_IFBLK|0o640, int(unix.Mkdev(8, 0))))
			must(t, unix.Mkfifo(w.path("run/fifo"), 0o600))
		}, func(t *testing.T, w *workspace) {
			st := statT(t, w.path("dev/ttyS0"))
			if st.Mode != unix.S_IFCHR|0o600 || unix.Major(st.Rdev) != 4 || unix.Minor(st.Rdev) != 64 {
				t.Errorf("ttyS0: mode %o rdev %d,%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
			st = statT(t, w.path("dev/sda"))
			if st.Mode != unix.S_IFBLK|0o640 || unix.Major(st.Rdev) != 8 {
				t.Errorf("sda: mode %o rdev %d,%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
			wantMode(t, w.path("run/fifo"), fs.ModeNamedPipe|0o600)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorkspace(t)
			before := hashTree(t, w.dir, "mnt", ".fledge")
			c.do(t, w)
			c.check(t, w)
			w.unmount(t)
			w.mount(t)
			c.check(t, w)
			if after := hashTree(t, w.dir, "mnt", ".fledge"); after != before {
				t.Errorf("host sources changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func statT(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st
}

func wantFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s: content %q, want %q", p, b, content)
	}
	wantMode(t, p, mode)
	if fi, _ := os.Stat(p); fi != nil && fi.Size() != int64(len(content)) {
		t.Errorf("%s: size %d, want %d", p, fi.Size(), len(content))
	}
}

func wantMode(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
	}
}

func wantOwner(t *testing.T, p string, uid, gid uint32) {
	t.Helper()
	st := statT(t, p)
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

func wantLink(t *testing.T, p, target string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil || got != target {
		t.Errorf("%s: link %q (%v), want %q", p, got, err, target)
	}
}

func wantGone(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: still there (%v)", p, err)
	}
}

func wantNames(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

// hashTree fingerprints everything under root (names, modes, owners,
// contents, link targets), skipping the named top-level entries.
func hashTree(t testing.TB, root string, skip ...string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	must(t, err)
	sort.Strings(lines)
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(lines, "\n"))))
}
