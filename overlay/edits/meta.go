package edits

// Every read and write of owners, modes, device numbers and times of the
// layer's objects is in this file, so what a rootless mount (which cannot
// chown or mknod) records as metadata instead changes here alone.

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// setMeta gives name the owner, mode and mtime of ent. Owner first, since
// chown clears setuid and setgid bits.
func (d dirFD) setMeta(name string, ent *overlay.Entry, mtime unix.Timespec) error {
	if err := unix.Fchownat(int(d), name, ent.UID, ent.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	if ent.Type != overlay.Symlink {
		// name was just created by us and is not a symlink, so following
		// (fchmodat has no working NOFOLLOW) cannot leave the folder.
		if err := unix.Fchmodat(int(d), name, ent.UnixMode()&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	ts := []unix.Timespec{mtime, mtime}
	if err := unix.UtimesNanoAt(int(d), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", name, err)
	}
	return nil
}

// fileMeta gives name in d, open as f, the owner, mode and mtime (if any)
// of ent; owner first, since chown clears setuid and setgid bits.
func (d dirFD) fileMeta(name string, f *os.File, ent *overlay.Entry) error {
	if err := unix.Fchown(int(f.Fd()), ent.UID, ent.GID); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(int(f.Fd()), ent.UnixMode()&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if ent.MTime.IsZero() {
		return nil
	}
	ts := []unix.Timespec{timespec(ent.MTime), timespec(ent.MTime)}
	if err := unix.UtimesNanoAt(int(d), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// Attr is a change of metadata; nil fields stay as they are.
type Attr struct {
	Mode         *uint32 // permission bits with setuid, setgid, sticky (07777)
	UID, GID     *int
	Size         *int64
	ATime, MTime *time.Time
	// DropSetID clears the setuid bit, and the setgid bit where the group
	// may execute, after the rest: what a truncate by an unprivileged
	// caller does (see withoutSetID).
	DropSetID bool
}

func (d dirFD) setAttr(name string, a Attr) error {
	st, _, err := d.stat(name)
	if err != nil {
		return err
	}
	return d.setAttrOf(name, a, st.Mode&unix.S_IFMT == unix.S_IFLNK)
}

// setAttrOf is setAttr for name known to be a symlink or not.
func (d dirFD) setAttrOf(name string, a Attr, isLink bool) error {
	if uid, gid, ok := a.owner(); ok {
		if err := unix.Fchownat(int(d), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if a.Mode != nil && !isLink {
		if err := unix.Fchmodat(int(d), name, *a.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	if a.Size != nil {
		f, err := d.openFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(*a.Size)
		f.Close()
		if err != nil {
			return err
		}
	}
	if ts, ok := a.times(); ok {
		if err := unix.UtimesNanoAt(int(d), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if a.DropSetID && !isLink {
		var st unix.Stat_t
		if err := unix.Fstatat(int(d), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if mode, drop := withoutSetID(st.Mode); drop {
			return unix.Fchmodat(int(d), name, mode&0o7777, 0)
		}
	}
	return nil
}

// withoutSetID is mode as a write or truncate by a caller without
// CAP_FSETID leaves it: no setuid bit, and no setgid bit if the group may
// execute (setgid alone marks mandatory locking). drop says it changed.
func withoutSetID(mode uint32) (m uint32, drop bool) {
	m = mode &^ unix.S_ISUID
	if mode&unix.S_IXGRP != 0 {
		m &^= unix.S_ISGID
	}
	return m, m != mode
}

// DropSetID is withoutSetID for f, the open layer file at guest path p
// (which may have no name left), for a write by a caller without
// CAP_FSETID; it reports whether a bit was cleared, a change the layer
// records.
func (e *Edits) DropSetID(f *os.File, p string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, err
	}
	// Most writes find nothing to clear, and take no lock.
	if _, drop := withoutSetID(st.Mode); !drop {
		return false, nil
	}
	release, err := e.begin()
	if err != nil {
		return false, err
	}
	defer release()
	defer e.touchedAttr(p)
	return clearSetID(int(f.Fd()))
}

// clearSetID applies withoutSetID to the open file fd and reports whether
// it changed the mode.
func clearSetID(fd int) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	mode, drop := withoutSetID(st.Mode)
	if !drop {
		return false, nil
	}
	return true, unix.Fchmod(fd, mode&0o7777)
}

// ApplyToFile changes the metadata of an open file of the layer, which may
// have no name left (unlinked while open).
func (a Attr) ApplyToFile(f *os.File) error {
	fd := int(f.Fd())
	if uid, gid, ok := a.owner(); ok {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	if a.Mode != nil {
		if err := unix.Fchmod(fd, *a.Mode&0o7777); err != nil {
			return err
		}
	}
	if a.Size != nil {
		if err := unix.Ftruncate(fd, *a.Size); err != nil {
			return err
		}
	}
	if ts, ok := a.times(); ok {
		if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
			return err
		}
	}
	if a.DropSetID {
		_, err := clearSetID(fd)
		return err
	}
	return nil
}

// owner returns the chown arguments of a, -1 for what stays.
func (a Attr) owner() (uid, gid int, ok bool) {
	uid, gid = -1, -1
	if a.UID != nil {
		uid = *a.UID
	}
	if a.GID != nil {
		gid = *a.GID
	}
	return uid, gid, a.UID != nil || a.GID != nil
}

// times returns the utimensat times of a, UTIME_OMIT for what stays.
func (a Attr) times() ([]unix.Timespec, bool) {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if a.ATime != nil {
		ts[0] = timespec(*a.ATime)
	}
	if a.MTime != nil {
		ts[1] = timespec(*a.MTime)
	}
	return ts, a.ATime != nil || a.MTime != nil
}

func timespec(t time.Time) unix.Timespec {
	return unix.NsecToTimespec(t.UnixNano())
}

// isWhiteout reports the overlayfs whiteout: a character device 0/0, which
// needs no name of its own (a ".wh." prefix would not fit beside a name of
// NAME_MAX bytes).
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// mkWhiteout makes name the overlayfs whiteout (see isWhiteout).
func (d dirFD) mkWhiteout(name string) error {
	return unix.Mknodat(int(d), name, unix.S_IFCHR|0o600, 0)
}

// mknod makes name the device node, FIFO or socket ent describes, with
// its mode and device numbers.
func (d dirFD) mknod(name string, ent *overlay.Entry) error {
	return unix.Mknodat(int(d), name, ent.UnixMode(), int(unix.Mkdev(ent.Major, ent.Minor)))
}

// statEntry is the metadata of the layer's object whose lstat is st: its
// type, permissions, owner, mtime and device numbers.
func statEntry(st *unix.Stat_t) (overlay.Entry, error) {
	t, perm, err := overlay.FromUnixMode(st.Mode)
	if err != nil {
		return overlay.Entry{}, err
	}
	ent := overlay.Entry{
		Type: t, Perm: perm,
		UID: int(st.Uid), GID: int(st.Gid),
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
	}
	if t == overlay.CharDev || t == overlay.BlockDev {
		ent.Major, ent.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	return ent, nil
}
