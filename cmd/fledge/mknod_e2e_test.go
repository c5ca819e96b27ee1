package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mknodScript, run as nobody, mounts a copy of $EXAMPLE, looks for
// /dev/ttyS9 (so the kernel caches its absence), adds it with fledge mknod
// while the mount is live and waits for the mount to show it; then, with no
// mount, adds a block device, and packs. It prints what stat showed, the
// pack's listing and the edits not nobody's.
const mknodScript = mountExampleScript + `if stat "$MNT/dev/ttyS9" 2>/dev/null; then echo "ttyS9 there before mknod"; fi
"$FLEDGE" mknod /dev/ttyS9 c 4 64 --owner 5:6 --mode 0620
i=0
until [ -e "$MNT/dev/ttyS9" ] || [ $i -gt 100 ]; do i=$((i+1)); sleep 0.1; done
stat -c 'mount: %F %Hr,%Lr %u:%g %a' "$MNT/dev/ttyS9"
"$FLEDGE" umount "$MNT"
wait $pid
"$FLEDGE" mknod dev/vda b 254 0 --mode 0660 --owner 0:6
"$FLEDGE" pack -o "$HOME/out.cpio"
cpio -tv --numeric-uid-gid <"$HOME/out.cpio" 2>/dev/null
find .fledge ! -user 65534 | sed 's/^/not nobody'"'"'s: /'
`

// An ordinary user, whose mount cannot make a device (the kernel refuses
// mknod without CAP_MKNOD), adds one with fledge mknod: the live mount shows
// it as that device, with the owner and mode given, and so does the pack
// made as that user, as does a block device added with no mount; every host
// file of the edits stays the user's.
func TestMknodRootless(t *testing.T) {
	needTool(t, "cpio", "cpio")
	out, err := asNobody(t, 0o666, `setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c "$SCRIPT"`,
		[]string{"SCRIPT=" + mknodScript, "EXAMPLE=" + copyExample(t, "default")})
	if err != nil || strings.Contains(out, "not nobody's") || strings.Contains(out, "there before mknod") {
		t.Fatalf("fledge mknod as nobody: %v\n%s", err, out)
	}
	for _, w := range []string{
		`added /dev/ttyS9: crw--w---- 5:6 4,64\n`,
		`mount: character special file 4,64 5:6 620\n`,
		`added /dev/vda: brw-rw---- 0:6 254,0\n`,
		`crw--w---- +1 5 +6 +4, +64 .* dev/ttyS9\n`,
		`brw-rw---- +1 0 +6 +254, +0 .* dev/vda\n`,
	} {
		if !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("fledge mknod as nobody: no line matches %q:\n%s", w, out)
		}
	}
}

// As root, fledge mknod makes a real device node in the edits of a root
// workspace, a live mount shows it, and the pack has it.
func TestMknodRoot(t *testing.T) {
	needTool(t, "cpio", "cpio")
	dir := copyExample(t, "default")
	m := startMount(t, dir, newMountpoint(t))
	node := filepath.Join(m.mnt, "dev", "ttyS9")
	if _, err := os.Lstat(node); err == nil {
		t.Fatalf("%s exists before mknod", node)
	}
	r := mustFledge(t, dir, nil, "mknod", "/dev/ttyS9", "c", "4", "64", "--owner", "5:6", "--mode", "0644")
	if want := "added /dev/ttyS9: crw-r--r-- 5:6 4,64\n"; r.stdout != want {
		t.Errorf("mknod said %q, want %q (mode 0666 less the umask 022)", r.stdout, want)
	}
	var st unix.Stat_t
	for i := 0; unix.Lstat(node, &st) != nil && i < 100; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if st.Mode != syscall.S_IFCHR|0o644 || unix.Major(st.Rdev) != 4 || unix.Minor(st.Rdev) != 64 || st.Uid != 5 || st.Gid != 6 {
		t.Errorf("the live mount shows %s as mode %o, device %d,%d, owner %d:%d; want %o, 4,64, 5:6",
			node, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Uid, st.Gid, syscall.S_IFCHR|0o644)
	}
	m.umount(t)
	host := filepath.Join(dir, ".fledge", "edits", "dev", "ttyS9")
	if err := unix.Lstat(host, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != unix.Mkdev(4, 64) {
		t.Errorf("%s in root's workspace: %v, mode %o, rdev %#x; want a real character device 4,64", host, err, st.Mode, st.Rdev)
	}
	art := filepath.Join(t.TempDir(), "out.cpio")
	mustFledge(t, dir, nil, "pack", "-o", art)
	out := string(shell(t, "/", "cpio -tv --numeric-uid-gid <"+art+" 2>/dev/null"))
	if !regexp.MustCompile(`crw-r--r-- +1 5 +6 +4, +64 .* dev/ttyS9\n`).MatchString(out) {
		t.Errorf("the pack lacks dev/ttyS9 as c 4,64 owned 5:6:\n%s", out)
	}
}

// An artifact's workspace takes a node too, and the re-pack carries it.
func TestMknodArtifact(t *testing.T) {
	needTool(t, "cpio", "cpio")
	dir := copyExample(t, "default")
	art := filepath.Join(t.TempDir(), "base.cpio")
	mustFledge(t, dir, nil, "pack", "-o", art)
	ws := filepath.Join(t.TempDir(), "ws")
	mustFledge(t, "/", nil, "mknod", art, "/dev/fifo", "p", "--mode", "0640", "--workspace", ws)
	out := filepath.Join(t.TempDir(), "new.cpio")
	mustFledge(t, "/", nil, "pack", art, "--workspace", ws, "-o", out)
	list := string(shell(t, "/", "cpio -tv --numeric-uid-gid <"+out+" 2>/dev/null"))
	if !regexp.MustCompile(`prw-r----- +1 0 +0 .* dev/fifo\n`).MatchString(list) {
		t.Errorf("the re-pack of %s lacks dev/fifo as a FIFO 0640:\n%s", art, list)
	}
}

// fledge mknod refuses, in one line naming the problem, what it cannot
// add, and adds nothing then.
func TestMknodRefuses(t *testing.T) {
	dir := copyExample(t, "default")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"/nope/tty", "c", "4", "64"}, "the image has no folder /nope"},
		{[]string{"/dev/console", "c", "5", "1"}, "the image already has a chardev there (from layer skeleton)"},
		{[]string{"/bin/sh/x", "p"}, "/bin/sh is a symlink to busybox in the image"},
		{[]string{"/init/x", "p"}, "/init is a file in the image, not a folder"},
		{[]string{"/dev/../x", "p"}, `contains ".."`},
		{[]string{"/", "p"}, "the image's root is a folder"},
		{[]string{"/dev/x", "q", "1", "2"}, `TYPE "q": expected c (or u)`},
		{[]string{"/dev/x", "c", "4"}, `a character device needs MAJOR and MINOR, found "4"`},
		{[]string{"/dev/x", "p", "1", "2"}, `a FIFO takes no MAJOR MINOR, found "1 2"`},
		{[]string{"/dev/x", "c", "4096", "0"}, `MAJOR "4096": expected a number from 0 to 4095`},
		{[]string{"/dev/x", "b", "8", "1048576"}, `MINOR "1048576": expected a number from 0 to 1048575`},
		{[]string{"/dev/x", "c", "4", "x1"}, `MINOR "x1": expected a number`},
		{[]string{"/dev/x", "c", "0", "0"}, "a character device 0,0 is how the edits record a deletion"},
		{[]string{"/dev/x", "p", "--mode", "8"}, `--mode "8": expected permissions in octal`},
		{[]string{"/dev/x", "p", "--owner", "0"}, `--owner "0": expected numeric UID:GID`},
	} {
		r := fledge(t, dir, nil, append([]string{"mknod"}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("mknod %q: exit %d, stderr %q; want one line saying %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, ".fledge", "edits")); err == nil {
		t.Errorf("refused mknods left edits in %s", dir)
	}
}
