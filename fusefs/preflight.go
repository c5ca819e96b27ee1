package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// The checks here run before the kernel is asked, so that a mount that
// cannot work fails with what was found, not with the kernel's or
// fusermount3's bare errno.

// checkMountpoint requires mountpoint to be an existing folder.
func checkMountpoint(mountpoint string) error {
	fi, err := os.Stat(mountpoint)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		abs := mountpoint
		if a, err := filepath.Abs(mountpoint); err == nil {
			abs = a
		}
		return fmt.Errorf("mountpoint %s does not exist; create the folder first: mkdir -p %s", abs, ShellQuote(abs))
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	case !fi.IsDir():
		return fmt.Errorf("mountpoint %s is %s, not a folder; mount on a folder", mountpoint, fileKind(fi.Mode()))
	}
	return nil
}

// fileKind names a file type for a message.
func fileKind(m fs.FileMode) string {
	if m.IsRegular() {
		return "a regular file"
	}
	return "a " + overlay.HostKind(m)
}

// hiddenEntries counts what the folder mountpoint holds, which the mount
// hides until it is unmounted.
func hiddenEntries(mountpoint string) int {
	d, err := os.Open(mountpoint)
	if err != nil {
		return 0
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if err != nil {
			return n
		}
	}
}

// fuseDevice is the device every FUSE mount is served through.
const fuseDevice = "/dev/fuse"

// checkDevice checks what a mount by the current user needs: /dev/fuse,
// and for an ordinary user, who mounts through the setuid fusermount3, the
// right to open the device, the helper, and /etc/fuse.conf's consent to
// letting other users in when share asks for it.
func checkDevice(share Share) error {
	fi, err := os.Stat(fuseDevice)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: load the fuse module (`modprobe fuse`), or in a container pass the device in (docker run --device /dev/fuse)", fuseDevice)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", fuseDevice, err)
	}
	uid := os.Geteuid()
	if uid == 0 {
		return nil
	}
	// access(2) checks the real ids, the ones fusermount3 opens it with.
	if unix.Access(fuseDevice, unix.R_OK|unix.W_OK) != nil {
		owner := ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = fmt.Sprintf(" (owner %d, group %d)", st.Uid, st.Gid)
		}
		return fmt.Errorf("%s is c%s%s, which uid %d may not open for reading and writing; run fledge mount as root, or have the device opened to users (chmod 0666 %s, as stock distributions ship it)",
			fuseDevice, fi.Mode().Perm().String()[1:], owner, os.Getuid(), fuseDevice)
	}
	if !hasFusermount() {
		return fmt.Errorf("uid %d mounts through fusermount3, which is not on PATH: install fuse3, or run fledge mount as root", uid)
	}
	if share != ShareNone && !userAllowOther() {
		return fmt.Errorf("--share=read or write lets other users use the mount (FUSE's allow_other), which fusermount3 grants uid %d only when /etc/fuse.conf says user_allow_other, and it does not; mount with --share=none (only you see the mount), or as root", uid)
	}
	return nil
}

// hasFusermount reports whether a helper go-fuse would call is on PATH.
func hasFusermount() bool {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	return false
}

// userAllowOther reports whether /etc/fuse.conf has the line
// user_allow_other, which lets an ordinary user mount with allow_other.
func userAllowOther() bool {
	f, err := os.Open("/etc/fuse.conf")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}
