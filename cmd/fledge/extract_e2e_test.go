package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// End-to-end tests of fledge cat and fledge extract.

// writeGzipArchive writes a as a gzip-compressed artifact.
func writeGzipArchive(t *testing.T, a *newcArchive) string {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write(a.bytes())
	z.Close()
	art := filepath.Join(t.TempDir(), "a.cpio.gz")
	if err := os.WriteFile(art, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return art
}

// richArchive holds every kind of entry with owners, special mode bits,
// mtimes and a hard-link pair whose data comes with its last member, as
// GNU cpio writes it.
func richArchive() *newcArchive {
	a := &newcArchive{}
	a.add(newcRecord{name: "etc", mode: 0o040750, uid: 7, gid: 8, mtime: 1_000_000_000})
	a.add(newcRecord{name: "etc/motd", mode: 0o100640, uid: 7, gid: 8, mtime: 1_100_000_000, data: "hello\n"})
	a.add(newcRecord{name: "bin", mode: 0o040755, mtime: 1_200_000_000})
	a.add(newcRecord{name: "bin/su", mode: 0o104755, mtime: 1_300_000_000, data: "#!/bin/sh\n"})
	a.add(newcRecord{name: "bin/a", mode: 0o100755, ino: 77, nlink: 2, mtime: 1_400_000_000})
	a.add(newcRecord{name: "bin/b", mode: 0o100755, ino: 77, nlink: 2, mtime: 1_400_000_000, data: "linked\n"})
	a.add(newcRecord{name: "bin/sh", mode: 0o120777, mtime: 1_500_000_000, data: "a"})
	a.add(newcRecord{name: "tmp", mode: 0o041777, mtime: 1_600_000_000})
	a.add(newcRecord{name: "dev", mode: 0o040755})
	a.add(newcRecord{name: "dev/console", mode: 0o020600, rdev: [2]uint32{5, 1}})
	a.add(newcRecord{name: "dev/sda", mode: 0o060660, gid: 6, rdev: [2]uint32{8, 0}})
	a.add(newcRecord{name: "run", mode: 0o040755})
	a.add(newcRecord{name: "run/fifo", mode: 0o010620, mtime: 1_700_000_000})
	a.add(newcRecord{name: "ro", mode: 0o040555, mtime: 1_800_000_000})
	a.add(newcRecord{name: "ro/f", mode: 0o100444, data: "read only\n"})
	return a
}

// treeFacts describes every entry below dir, never following a symlink:
// type and mode, owner, size or device, mtime (with allTimes, also of
// folders and symlinks, which cpio -idm leaves at the time of unpacking),
// content hash, link target, and which paths share an inode.
func treeFacts(t *testing.T, dir string, allTimes bool) map[string]string {
	t.Helper()
	facts := map[string]string{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := "/" + strings.TrimPrefix(p, dir+"/")
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		f := fmt.Sprintf("mode %o owner %d:%d", st.Mode, st.Uid, st.Gid)
		if typ := st.Mode & syscall.S_IFMT; allTimes || typ != syscall.S_IFDIR && typ != syscall.S_IFLNK {
			f += fmt.Sprintf(" mtime %d", st.Mtim.Sec)
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f += fmt.Sprintf(" sha256 %x", sha256.Sum256(b))
			inodes[st.Ino] = append(inodes[st.Ino], rel)
		case syscall.S_IFLNK:
			target, _ := os.Readlink(p)
			f += " -> " + target
		case syscall.S_IFCHR, syscall.S_IFBLK:
			f += fmt.Sprintf(" rdev %d", st.Rdev)
		}
		facts[rel] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, group := range inodes {
		if len(group) > 1 {
			slices.Sort(group)
			for _, p := range group {
				facts[p] += " linked " + strings.Join(group, ",")
			}
		}
	}
	return facts
}

func sameFacts(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s\n got %q\nwant %q", what, p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s is extra: %s", what, p, got[p])
		}
	}
}

// As root, extract writes what GNU cpio -idm writes (the oracle), and also
// gives folders and symlinks their mtimes.
func TestExtractMatchesCpio(t *testing.T) {
	needTool(t, "cpio", "cpio")
	needTool(t, "gzip", "gzip")
	for name, art := range map[string]string{"rich": writeGzipArchive(t, richArchive()), "default": buildExample(t, "default")} {
		t.Run(name, func(t *testing.T) {
			ours, theirs := filepath.Join(t.TempDir(), "out"), t.TempDir()
			r := mustFledge(t, t.TempDir(), nil, "extract", art, ours)
			if r.stdout != "" || r.stderr != "" {
				t.Errorf("extract printed %q %q; want nothing", r.stdout, r.stderr)
			}
			gnuCPIO(t, art, theirs, "-idm", "--quiet", "--no-absolute-filenames")
			sameFacts(t, "extract vs cpio -idm", treeFacts(t, ours, false), treeFacts(t, theirs, false))
			if name == "rich" {
				facts := treeFacts(t, ours, true)
				for p, mtime := range map[string]string{"/etc": "1000000000", "/ro": "1800000000", "/tmp": "1600000000", "/bin/sh": "1500000000"} {
					if !strings.Contains(facts[p], " mtime "+mtime) {
						t.Errorf("%s: %s; want mtime %s", p, facts[p], mtime)
					}
				}
			}
		})
	}
}

// Named paths bring their subtrees and the folders that lead to them;
// a path reached through a symlinked folder is extracted where it is.
func TestExtractNamedPaths(t *testing.T) {
	art := writeGzipArchive(t, richArchive())
	out := filepath.Join(t.TempDir(), "out")
	mustFledge(t, t.TempDir(), nil, "extract", art, out, "etc", "/bin/b", "/run/")
	var got []string
	for p := range treeFacts(t, out, false) {
		got = append(got, p)
	}
	slices.Sort(got)
	want := []string{"/bin", "/bin/b", "/etc", "/etc/motd", "/run", "/run/fifo"}
	if !slices.Equal(got, want) {
		t.Fatalf("extracted %v, want %v", got, want)
	}
	if r := fledge(t, t.TempDir(), nil, "extract", art, out, "/nope"); r.code != 1 || !strings.Contains(r.stderr, "/nope: not in the image") {
		t.Errorf("extract of a missing path: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := fledge(t, t.TempDir(), nil, "extract", art); r.code != 1 || !strings.Contains(r.stderr, "also name the folder to extract into") {
		t.Errorf("extract ARTIFACT without DIR: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A recipe is extracted as its merged view, DIR first when the recipe is
// ./fledge.toml.
func TestExtractRecipe(t *testing.T) {
	dir := greetingRecipe(t)
	out := filepath.Join(t.TempDir(), "out")
	mustFledge(t, dir, nil, "extract", out, "etc/greeting")
	if b, err := os.ReadFile(filepath.Join(out, "etc", "greeting")); err != nil || string(b) != "hello\n" {
		t.Fatalf("extracted /etc/greeting: %q, %v", b, err)
	}
}

// As an ordinary user, extract needs no root: the files are the user's,
// and the device nodes are skipped with one warning line.
func TestExtractWithoutRoot(t *testing.T) {
	base := t.TempDir()
	// t.TempDir's folders are root's and 0700; nobody must reach base.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	art := filepath.Join(base, "a.cpio")
	if err := os.WriteFile(art, richArchive().bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(out, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fledgeBin, "extract", art, out)
	cmd.Dir = "/"
	runAsNobody(cmd, nobodyHome(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("extract as nobody: %v\n%s", err, stderr.String())
	}
	want := "fledge: skipped 2 device node(s) (/dev/console, /dev/sda): making them needs root; 'fledge ls -l' shows them\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	facts := treeFacts(t, out, true)
	for p, w := range map[string]string{
		"/bin/su":   "mode 104755 owner 65534:65534 mtime 1300000000",
		"/ro/f":     "mode 100444 owner 65534:65534",
		"/ro":       "mode 40555 owner 65534:65534 mtime 1800000000",
		"/run/fifo": "mode 10620 owner 65534:65534 mtime 1700000000",
		"/bin/sh":   "mode 120777 owner 65534:65534 mtime 1500000000 -> a",
	} {
		if !strings.HasPrefix(facts[p], w) {
			t.Errorf("%s: %q, want %q", p, facts[p], w)
		}
	}
	if _, ok := facts["/dev/console"]; ok {
		t.Errorf("/dev/console made without root: %s", facts["/dev/console"])
	}
	if !strings.Contains(facts["/bin/a"], "linked /bin/a,/bin/b") {
		t.Errorf("/bin/a and /bin/b are not one inode: %s", facts["/bin/a"])
	}
}

// Hostile archives never get extract to write outside DIR.
func TestExtractStaysInDir(t *testing.T) {
	outside := t.TempDir() // what an escape would write into
	t.Run("dot-dot", func(t *testing.T) {
		a := &newcArchive{}
		a.file("../escaped", 0o644, "x")
		art := writeGzipArchive(t, a)
		out := filepath.Join(t.TempDir(), "out")
		r := fledge(t, t.TempDir(), nil, "extract", art, out)
		if r.code != 1 || !strings.Contains(r.stderr, `contains ".."`) {
			t.Errorf("extract of ../escaped: exit %d, stderr %q; want the archive refused", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escaped")); err == nil {
			t.Error("../escaped was written next to DIR")
		}
	})
	t.Run("symlinked parents", func(t *testing.T) {
		// The image holds the folders of outside's path, so the kernel (and
		// the view) puts etc/passwd and up/x there, inside the image; a
		// writer that follows links on the host would write into outside.
		a := &newcArchive{}
		parts := strings.Split(strings.TrimPrefix(outside, "/"), "/")
		for i := range parts {
			a.dir(strings.Join(parts[:i+1], "/"), 0o755)
		}
		a.link("etc", outside)
		a.file("etc/passwd", 0o644, "root::0:0::/:/bin/sh\n")
		a.link("up", strings.Repeat("../", 20)+strings.TrimPrefix(outside, "/"))
		a.file("up/x", 0o644, "x")
		art := writeGzipArchive(t, a)
		out := filepath.Join(t.TempDir(), "out")
		mustFledge(t, t.TempDir(), nil, "extract", art, out)
		if target, err := os.Readlink(filepath.Join(out, "etc")); err != nil || target != outside {
			t.Errorf("DIR/etc: %q, %v; want the symlink kept", target, err)
		}
		for _, name := range []string{"passwd", "x"} {
			if _, err := os.Stat(filepath.Join(out, outside, name)); err != nil {
				t.Errorf("%s is not where the image puts it, below DIR: %v", name, err)
			}
		}
	})
	t.Run("symlinks already in DIR", func(t *testing.T) {
		a := &newcArchive{}
		a.dir("etc", 0o755)
		a.file("etc/passwd", 0o644, "root::0:0::/:/bin/sh\n")
		a.file("init", 0o755, "#!/bin/sh\n")
		art := writeGzipArchive(t, a)
		out := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(out, "etc")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "init"), filepath.Join(out, "init")); err != nil {
			t.Fatal(err)
		}
		mustFledge(t, t.TempDir(), nil, "extract", art, out)
		if fi, err := os.Lstat(filepath.Join(out, "etc")); err != nil || !fi.IsDir() {
			t.Errorf("DIR/etc is not a folder now: %v, %v", fi, err)
		}
		if fi, err := os.Lstat(filepath.Join(out, "init")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("DIR/init is not a file now: %v, %v", fi, err)
		}
	})
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 0 {
		t.Fatalf("extract wrote outside DIR: %v %v", ents, err)
	}
}

// cat prints one file of an artifact or recipe, following symlinks in the
// image only.
func TestCat(t *testing.T) {
	a := richArchive()
	a.link("hostlink", "/etc/hostname") // the host has one; the image does not
	art := writeGzipArchive(t, a)
	dir := t.TempDir()
	for path, want := range map[string]string{"/etc/motd": "hello\n", "bin/sh": "linked\n", "/bin/a": "linked\n"} {
		if r := mustFledge(t, dir, nil, "cat", art, path); r.stdout != want {
			t.Errorf("cat %s: %q, want %q", path, r.stdout, want)
		}
	}
	for path, want := range map[string]string{
		"/etc":         "/etc is a directory",
		"/dev/console": "/dev/console is a chardev",
		"/hostlink":    "/hostlink is a symlink to /etc/hostname, which is not in the image",
		"/nope":        "/nope: not in the image",
	} {
		if r := fledge(t, dir, nil, "cat", art, path); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, want) {
			t.Errorf("cat %s: exit %d, stdout %q, stderr %q; want %q", path, r.code, r.stdout, r.stderr, want)
		}
	}
	rdir := greetingRecipe(t)
	if r := mustFledge(t, rdir, nil, "cat", "etc/greeting"); r.stdout != "hello\n" {
		t.Errorf("cat etc/greeting of the recipe: %q", r.stdout)
	}
	busybox, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if r := mustFledge(t, rdir, nil, "cat", "/bin/sh"); r.stdout != string(busybox) {
		t.Errorf("cat /bin/sh of the recipe: %d bytes, want BusyBox's %d", len(r.stdout), len(busybox))
	}
}
