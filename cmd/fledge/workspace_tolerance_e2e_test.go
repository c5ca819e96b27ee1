package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mkdeep makes folders of 200-byte names below root, one handle at a time
// (the host path of the result is longer than PATH_MAX), until the guest
// path below guest would pass limit, and a file f there holding data. It
// returns the guest path of f.
func mkdeep(t *testing.T, root, guest string, limit int, data string) string {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 200)
	for len(guest)+len(name)+3 < limit {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatalf("mkdir at depth %d: %v", len(guest), err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("open at depth %d: %v", len(guest), err)
		}
		fd, guest = next, guest+"/"+name
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("create at depth %d: %v", len(guest), err)
	}
	defer unix.Close(f)
	if _, err := unix.Write(f, []byte(data)); err != nil {
		t.Fatal(err)
	}
	return guest + "/f"
}

// readDeep reads file guest below mnt through handles.
func readDeep(t *testing.T, mnt, guest string) string {
	t.Helper()
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(guest, "/"), "/")
	for _, c := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("reading %s back: %v", guest, err)
		}
		fd = next
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, parts[len(parts)-1], unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f)
	b := make([]byte, 64)
	n, _ := unix.Read(f, b)
	return string(b[:max(n, 0)])
}

// A workspace holding a PATH_MAX-deep edit, a name of NAME_MAX bytes, a
// crash leftover and a folder its reader may not open still mounts, packs,
// diffs and resets; what cannot be read costs only itself, named on one
// line with the command that drops it.
func TestWorkspaceSurvivesWhatItCannotRead(t *testing.T) {
	needTool(t, "cpio", "cpio")
	dir := copyExample(t, "default")
	mnt := sharedMountpoint(t)
	m := startMount(t, dir, mnt)
	deep := mkdeep(t, filepath.Join(mnt, "tmp"), "/tmp", 4000, "deep\n")
	long := "/etc/" + strings.Repeat("n", 255)
	if err := os.WriteFile(filepath.Join(mnt, long), []byte("long\n"), 0o644); err != nil {
		t.Fatalf("a 255-byte name: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "bin", "ls")); err != nil {
		t.Fatal(err)
	}
	m.umount(t)

	edits := filepath.Join(dir, ".fledge", "edits")
	if err := os.WriteFile(filepath.Join(edits, "etc", ".wh..wh.tmp.1.1"), []byte("half a copy-up"), 0o600); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(edits, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(private, "secret"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	art := filepath.Join(t.TempDir(), "w.cpio.gz")
	r := mustFledge(t, dir, nil, "pack", "-o", art)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("root's pack warns:\n%s", r.stderr)
	}
	listing := gnuCPIO(t, art, t.TempDir(), "-it", "--quiet")
	for _, want := range []string{strings.TrimPrefix(deep, "/"), strings.TrimPrefix(long, "/"), "private/secret"} {
		if !strings.Contains(listing, want+"\n") {
			t.Errorf("the pack lacks %.60s…", want)
		}
	}
	if strings.Contains(listing, ".wh.") || strings.Contains(listing, "bin/ls\n") {
		t.Errorf("the pack holds a whiteout, a temporary name or a deleted file:\n%s", listing)
	}
	d := fledge(t, dir, nil, "diff")
	if d.code != 1 || !strings.Contains(d.stdout, deep) || !strings.Contains(d.stdout, long) || !strings.Contains(d.stdout, "deleted  /bin/ls") {
		t.Errorf("fledge diff (exit %d):\n%s%s", d.code, d.stdout, d.stderr)
	}

	out, err := diffAsNobody(t, dir)
	if !strings.Contains(out, deep) || !strings.Contains(out, "edits of /private left out: open private: permission denied; `fledge reset /private` drops them") {
		t.Errorf("fledge diff as nobody (%v) does not list the rest and name the unreadable folder:\n%s", err, out)
	}
	if strings.Count(out, "warning") != 1 {
		t.Errorf("want one warning line:\n%s", out)
	}

	m = startMount(t, dir, mnt)
	if got := readDeep(t, mnt, deep); got != "deep\n" {
		t.Errorf("the deep file reads %q after a remount", got)
	}
	m.umount(t)
	mustFledge(t, dir, nil, "reset", "/tmp")
	mustFledge(t, dir, nil, "reset", "/private")
	d = fledge(t, dir, nil, "diff")
	if strings.Contains(d.stdout, "/tmp/") || strings.Contains(d.stdout, "/private") || !strings.Contains(d.stdout, long) {
		t.Errorf("after resetting /tmp and /private, fledge diff:\n%s", d.stdout)
	}
}

// diffAsNobody runs fledge diff on the recipe in dir as nobody, with a
// home of its own.
func diffAsNobody(t *testing.T, dir string) (string, error) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(fledgeBin, "diff", "-c", filepath.Join(dir, "fledge.toml"))
	runAsNobody(cmd, nobodyHome(t))
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// A mount whose view cannot be built (here the edits "folder" is a file)
// fails before it mounts: it says why and leaves no dead mountpoint.
func TestFailedMountLeavesNoMountpoint(t *testing.T) {
	needRoot(t)
	dir := copyExample(t, "default")
	if err := os.MkdirAll(filepath.Join(dir, ".fledge"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".fledge", "edits"), []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := newMountpoint(t)
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fledgeBin, "mount", mnt)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "edits") {
		t.Errorf("fledge mount of a broken workspace: %v (%v)\n%s", err, ctx.Err(), out)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Errorf("the mountpoint after a failed mount: %v", err)
	}
	if mounted, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(mounted), " "+mnt+" ") {
		t.Errorf("%s is still a mountpoint after the failed mount (%v)", mnt, err)
	}
}
