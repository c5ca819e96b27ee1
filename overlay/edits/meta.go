package edits

// Every read and write of owners, modes, device numbers and times of the
// layer's objects is in this file.
//
// A workspace is of one of two kinds, told by who made its edits folder
// (the owner of its format marker), whoever opens it later:
//
//   - Made by root, the folder holds every object as what it is, with the
//     image's owner, mode and device numbers on the host file itself.
//   - Made by an ordinary user (a rootless mount), the folder is that
//     user's. The user cannot chown, cannot set every mode on files of any
//     owner, nor make device nodes, so the host holds folders as folders
//     and everything else (regular files, symlinks, devices, FIFOs,
//     sockets) as a regular file, all of them the user's, with host
//     permissions the user can always read and write (0600, folders
//     0700). The image's type, permissions, owner and device numbers are
//     the extended attribute user.fledge.stat of each (see imageMeta); a
//     symlink's file holds its target. Times, sizes and contents stay on
//     the host. The attribute is set on the temporary object before it is
//     renamed into place (see materialize), so a crash never leaves an
//     object without it; one without it anyway (a file put into the folder
//     by hand, a copy that dropped attributes) reads as the host has it,
//     owned by root: the user stands for the image's root. A value fledge
//     cannot parse, or one that does not fit the host object, costs that
//     entry alone (see Problems). Whiteouts are devices 0/0 in both kinds:
//     Linux lets anyone make those.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

const (
	// statXattr holds an object's image metadata in a rootless workspace.
	statXattr = "user.fledge.stat"
	// hostFileMode and hostDirMode are the host permissions of every
	// object of a rootless workspace.
	hostFileMode = 0o600
	hostDirMode  = 0o700
)

// The kinds of folder, as Edits.kind holds them; zero is not known yet.
const (
	kindRoot int32 = 1 + iota
	kindUser
)

// userFolder reports whether the folder is of the rootless kind: its
// format marker belongs to an ordinary user, or, not made yet, the folder
// will be made by one. The marker, not the folder, tells: the folder
// stands for the image's root and takes its owner (in a root workspace of
// an image whose root is uid 1000, say), while the marker keeps the owner
// of whoever made the folder. A folder without a marker predates rootless
// workspaces, so it is root's.
func (e *Edits) userFolder() bool {
	switch e.kind.Load() {
	case kindRoot:
		return false
	case kindUser:
		return true
	}
	var st unix.Stat_t
	if unix.Lstat(e.dir, &st) != nil {
		return os.Geteuid() != 0
	}
	k := kindRoot
	if unix.Lstat(e.dir+"/"+formatMarker, &st) == nil && st.Uid != 0 {
		k = kindUser
	}
	e.kind.Store(k)
	return k == kindUser
}

// imageMeta is what a rootless workspace records of an object beside the
// host file: type and permission bits (as st_mode), owner, device numbers.
type imageMeta struct {
	mode         uint32
	uid, gid     int
	major, minor uint32
}

func metaOf(ent *overlay.Entry) imageMeta {
	m := imageMeta{mode: ent.UnixMode(), uid: ent.UID, gid: ent.GID}
	if ent.Type == overlay.CharDev || ent.Type == overlay.BlockDev {
		m.major, m.minor = ent.Major, ent.Minor
	}
	return m
}

// String is the attribute's value: mode in octal, uid, gid, major, minor.
func (m imageMeta) String() string {
	return fmt.Sprintf("%o %d %d %d %d", m.mode, m.uid, m.gid, m.major, m.minor)
}

// maxMetaValue bounds the value read: five numbers fit well within it.
const maxMetaValue = 64

// parseMeta reads a value String wrote, refusing anything else.
func parseMeta(v string) (imageMeta, error) {
	var m imageMeta
	f := strings.Fields(v)
	if len(f) != 5 {
		return m, fmt.Errorf("%s %q: want 5 numbers (mode uid gid major minor)", statXattr, v)
	}
	var n [5]uint64
	for i, s := range f {
		base := 10
		if i == 0 {
			base = 8
		}
		x, err := strconv.ParseUint(s, base, 32)
		if err != nil || i < 3 && x == 1<<32-1 {
			return m, fmt.Errorf("%s %q: field %d is not a valid number", statXattr, v, i+1)
		}
		n[i] = x
	}
	m = imageMeta{mode: uint32(n[0]), uid: int(n[1]), gid: int(n[2]), major: uint32(n[3]), minor: uint32(n[4])}
	if _, _, err := overlay.FromUnixMode(m.mode); err != nil || m.mode&^(unix.S_IFMT|0o7777) != 0 {
		return m, fmt.Errorf("%s %q: mode %o is no file type and permissions", statXattr, v, m.mode)
	}
	if m.mode&unix.S_IFMT == unix.S_IFCHR && m.major == 0 && m.minor == 0 {
		return m, fmt.Errorf("%s %q: a character device 0,0 is how the edits record a deletion", statXattr, v)
	}
	return m, nil
}

// object is one object of the layer: the open file fd if set, else name
// in d, or d itself when name is empty, or else the host path path.
type object struct {
	d    dirFD
	name string
	fd   int
	path string
}

func at(d dirFD, name string) object { return object{d: d, name: name, fd: -1} }
func opened(fd int) object           { return object{d: -1, fd: fd} }

// xattrPath names the object for the path-based attribute calls, which
// never follow a symlink at its end: name goes through the folder's
// descriptor, so nothing on the way is resolved again (name has no '/').
func (o object) xattrPath() string {
	if o.d < 0 {
		return o.path
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", o.d, o.name)
}

func (o object) getMeta() ([]byte, error) {
	buf := make([]byte, maxMetaValue)
	var n int
	var err error
	switch {
	case o.fd >= 0:
		n, err = unix.Fgetxattr(o.fd, statXattr, buf)
	case o.d >= 0 && o.name == "":
		n, err = unix.Fgetxattr(int(o.d), statXattr, buf)
	default:
		n, err = unix.Lgetxattr(o.xattrPath(), statXattr, buf)
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (o object) setMeta(m imageMeta) error {
	v := []byte(m.String())
	var err error
	switch {
	case o.fd >= 0:
		err = unix.Fsetxattr(o.fd, statXattr, v, 0)
	case o.d >= 0 && o.name == "":
		err = unix.Fsetxattr(int(o.d), statXattr, v, 0)
	default:
		err = unix.Lsetxattr(o.xattrPath(), statXattr, v, 0)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("the file system of the workspace keeps no user.* extended attributes, where a rootless workspace records owners, modes and devices; keep the recipe on ext4, xfs, btrfs or tmpfs: %w", err)
	}
	return err
}

// imageStat turns st, the host lstat of o in a rootless workspace, into
// the image's: type, permissions, owner and device numbers from the
// attribute, or, without one, root's ownership of what the host has.
func imageStat(o object, st *unix.Stat_t) error {
	host := st.Mode & unix.S_IFMT
	v, err := o.getMeta()
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
		st.Uid, st.Gid = 0, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", statXattr, err)
	}
	m, err := parseMeta(string(v))
	if err != nil {
		return err
	}
	t := m.mode & unix.S_IFMT
	if (t == unix.S_IFDIR) != (host == unix.S_IFDIR) || t != unix.S_IFDIR && host != unix.S_IFREG {
		return fmt.Errorf("%s %q does not fit the host object, of mode %o", statXattr, v, st.Mode)
	}
	st.Mode, st.Uid, st.Gid = m.mode, uint32(m.uid), uint32(m.gid)
	st.Rdev = unix.Mkdev(m.major, m.minor)
	return nil
}

// lstat is the image's lstat of name in d; ok is false when nothing is
// there.
func (e *Edits) lstat(d dirFD, name string) (st unix.Stat_t, ok bool, err error) {
	st, ok, err = d.stat(name)
	if err == nil && ok && e.userFolder() && !isWhiteout(&st) {
		err = imageStat(at(d, name), &st)
	}
	return st, ok, err
}

// fstat is the image's fstat of the layer's open file fd.
func (e *Edits) fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return st, err
	}
	if e.userFolder() {
		return st, imageStat(opened(fd), &st)
	}
	return st, nil
}

// hostStat is the image's lstat of host, a host path of the folder.
func (e *Edits) hostStat(host string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		return st, err
	}
	if e.userFolder() && !isWhiteout(&st) {
		return st, imageStat(object{d: -1, fd: -1, path: host}, &st)
	}
	return st, nil
}

// makeObject makes tmp in d as the object ent describes, without its
// metadata (see setMeta). A rootless workspace holds all but folders as
// regular files, a symlink's with its target.
func (e *Edits) makeObject(d dirFD, tmp string, ent *overlay.Entry) error {
	user := e.userFolder()
	switch {
	case ent.Type == overlay.Dir:
		return unix.Mkdirat(int(d), tmp, 0o700)
	case ent.Type == overlay.Regular:
		return d.writeContent(tmp, ent.Content)
	case user && ent.Type == overlay.Symlink:
		return d.writeContent(tmp, overlay.Bytes(ent.Linkname))
	case user && (ent.Type == overlay.CharDev || ent.Type == overlay.BlockDev || ent.Type == overlay.FIFO || ent.Type == overlay.Socket):
		return d.writeContent(tmp, nil)
	case ent.Type == overlay.Symlink:
		return unix.Symlinkat(ent.Linkname, int(d), tmp)
	case ent.Type == overlay.CharDev, ent.Type == overlay.BlockDev, ent.Type == overlay.FIFO, ent.Type == overlay.Socket:
		return unix.Mknodat(int(d), tmp, ent.UnixMode(), int(unix.Mkdev(ent.Major, ent.Minor)))
	}
	return fmt.Errorf("cannot store a %s: %w", ent.Type, unix.EINVAL)
}

// maxLinkTarget bounds a symlink's target read from a rootless workspace.
const maxLinkTarget = unix.PathMax - 1

// fileLink reads the target of a symlink a rootless workspace holds as
// the regular file name in d.
func fileLink(d dirFD, name string) (string, error) {
	// Without O_NOATIME each scan would move the atime the mount shows for
	// the link. Only the file's owner (or root) may ask for it.
	f, err := d.openFile(name, os.O_RDONLY|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = d.openFile(name, os.O_RDONLY, 0)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLinkTarget+1))
	switch {
	case err != nil:
		return "", err
	case len(b) > maxLinkTarget || len(b) == 0:
		return "", fmt.Errorf("symlink target of %d bytes: want 1 to %d", len(b), maxLinkTarget)
	}
	return string(b), nil
}

// setMeta gives name the owner, mode and mtime of ent. Owner first, since
// chown clears setuid and setgid bits.
func (e *Edits) setMeta(d dirFD, name string, ent *overlay.Entry, mtime unix.Timespec) error {
	if e.userFolder() {
		if err := at(d, name).setMeta(metaOf(ent)); err != nil {
			return fmt.Errorf("record the metadata of %s: %w", name, err)
		}
		if err := unix.Fchmodat(int(d), name, hostPerm(ent.Type == overlay.Dir), 0); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	} else if err := d.setHostMeta(name, ent); err != nil {
		return err
	}
	ts := []unix.Timespec{mtime, mtime}
	if err := unix.UtimesNanoAt(int(d), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", name, err)
	}
	return nil
}

func hostPerm(dir bool) uint32 {
	if dir {
		return hostDirMode
	}
	return hostFileMode
}

// setHostMeta is setMeta's owner and mode in a workspace made by root.
func (d dirFD) setHostMeta(name string, ent *overlay.Entry) error {
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
	return nil
}

// fileMeta gives name in d, open as f, the owner, mode and mtime (if any)
// of ent; owner first, since chown clears setuid and setgid bits.
func (e *Edits) fileMeta(d dirFD, name string, f *os.File, ent *overlay.Entry) error {
	fd := int(f.Fd())
	if e.userFolder() {
		if err := opened(fd).setMeta(metaOf(ent)); err != nil {
			return fmt.Errorf("record the metadata: %w", err)
		}
	} else {
		if err := unix.Fchown(fd, ent.UID, ent.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := unix.Fchmod(fd, ent.UnixMode()&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
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

func (e *Edits) setAttr(d dirFD, name string, a Attr) error {
	st, _, err := d.stat(name)
	if err != nil {
		return err
	}
	return e.setAttrOf(d, name, a, st.Mode&unix.S_IFMT == unix.S_IFLNK)
}

// setAttrOf is setAttr for name known to be a symlink or not (on the host:
// a rootless workspace reads the image's type itself).
func (e *Edits) setAttrOf(d dirFD, name string, a Attr, isLink bool) error {
	user := e.userFolder()
	if user {
		st, _, err := e.lstat(d, name)
		if err != nil {
			return err
		}
		if err := imageAttr(at(d, name), &st, a); err != nil {
			return err
		}
	} else if err := d.hostAttr(name, a, isLink); err != nil {
		return err
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
	if a.DropSetID && !isLink && !user {
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

// hostAttr is setAttrOf's owner and mode in a workspace made by root.
func (d dirFD) hostAttr(name string, a Attr, isLink bool) error {
	if uid, gid, ok := a.owner(); ok {
		if err := unix.Fchownat(int(d), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if a.Mode != nil && !isLink {
		return unix.Fchmodat(int(d), name, *a.Mode&0o7777, 0)
	}
	return nil
}

// imageAttr applies a's owner and mode, and the clearing of setuid and
// setgid it asks for, to o of a rootless workspace, whose image lstat is
// st; sizes and times are the host's. A change of owner clears setuid,
// and setgid where the group may execute, of all but folders, as chown(2)
// does on Linux even for root.
func imageAttr(o object, st *unix.Stat_t, a Attr) error {
	m := imageMeta{mode: st.Mode, uid: int(st.Uid), gid: int(st.Gid), major: unix.Major(st.Rdev), minor: unix.Minor(st.Rdev)}
	old := m
	t := m.mode & unix.S_IFMT
	if uid, gid, ok := a.owner(); ok {
		if uid >= 0 {
			m.uid = uid
		}
		if gid >= 0 {
			m.gid = gid
		}
		if t != unix.S_IFDIR {
			m.mode, _ = withoutSetID(m.mode)
		}
	}
	if a.Mode != nil && t != unix.S_IFLNK {
		m.mode = t | *a.Mode&0o7777
	}
	if a.DropSetID && t != unix.S_IFLNK {
		m.mode, _ = withoutSetID(m.mode)
	}
	if m == old {
		return nil
	}
	return o.setMeta(m)
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
	st, err := e.fstat(int(f.Fd()))
	if err != nil {
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
	return e.clearSetID(int(f.Fd()))
}

// clearSetID applies withoutSetID to the open file fd and reports whether
// it changed the mode.
func (e *Edits) clearSetID(fd int) (bool, error) {
	st, err := e.fstat(fd)
	if err != nil {
		return false, err
	}
	mode, drop := withoutSetID(st.Mode)
	if !drop {
		return false, nil
	}
	if e.userFolder() {
		return true, imageAttr(opened(fd), &st, Attr{DropSetID: true})
	}
	return true, unix.Fchmod(fd, mode&0o7777)
}

// ApplyToFile changes the metadata of f, an open file of the layer, which
// may have no name left (unlinked while open).
func (e *Edits) ApplyToFile(f *os.File, a Attr) error {
	fd := int(f.Fd())
	if e.userFolder() {
		st, err := e.fstat(fd)
		if err != nil {
			return err
		}
		if err := imageAttr(opened(fd), &st, Attr{UID: a.UID, GID: a.GID, Mode: a.Mode}); err != nil {
			return err
		}
	} else {
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
		_, err := e.clearSetID(fd)
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
