package fusefs

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// How long the kernel may keep an entry and its attributes. A read-only
// mount never changes, and a watched one tells the kernel of each change
// (see watch.go), so both let it keep them long: a FUSE request costs far
// more than the kernel's own lookup. Polling, host-backed nodes change
// behind the kernel's back (a mapped binary is rebuilt), so their
// attributes are cached briefly; the rest only change through the mount,
// which tells the kernel itself.
const (
	cachedTimeout = time.Hour
	liveTimeout   = 200 * time.Millisecond
	stableTimeout = 5 * time.Second
)

func (f *FS) timeout(vn *overlay.Node) time.Duration {
	switch {
	case f.cached():
		return cachedTimeout
	case hostBacked(vn):
		return liveTimeout
	}
	return stableTimeout
}

// fill sets the attributes the packer will write for vn.
func (f *FS) fill(v *overlay.View, vn *overlay.Node, a *fuse.Attr) {
	*a = fuse.Attr{
		Ino:   f.ino(vn),
		Mode:  vn.UnixMode(),
		Nlink: 1,
		Owner: fuse.Owner{Uid: uint32(vn.UID), Gid: uint32(vn.GID)},
	}
	mt := v.MTime(vn)
	a.SetTimes(&mt, &mt, &mt)
	switch vn.Type {
	case overlay.Dir:
		a.Nlink = 2 + uint32(v.Subdirs(vn))
	case overlay.Symlink:
		a.Size = uint64(len(vn.Linkname))
	case overlay.CharDev, overlay.BlockDev:
		a.Rdev = uint32(unix.Mkdev(vn.Major, vn.Minor))
	case overlay.Regular:
		a.Size = uint64(contentSize(vn))
	}
	if vn.Layer == edits.LayerName && f.edits != nil {
		f.fillEdit(vn, a)
	}
	a.Blksize = 4096
	a.Blocks = (a.Size + 511) / 512
}

// fillEdit takes from the host what changes without a new view: the size
// and mtime writes through open files change, the ctime every change of
// metadata moves, the atime (which the mount keeps, though an archive
// cannot), and the link count of every type.
func (f *FS) fillEdit(vn *overlay.Node, a *fuse.Attr) {
	st, err := f.edits.Stat(vn.Path)
	if err != nil || st.Mode&unix.S_IFMT != uint32(vn.UnixMode()&unix.S_IFMT) {
		return
	}
	fillStat(&st, a)
}

// heldAttr gives n, a regular file of the edits with one name, the
// attributes fill will give it once the view is updated: the edits layer
// takes the type, mode and owner from the host too. The last attributes
// are kept, as Getattr keeps them.
func (n *node) heldAttr(st *unix.Stat_t, a *fuse.Attr) {
	*a = fuse.Attr{
		Ino:     n.StableAttr().Ino,
		Mode:    st.Mode,
		Owner:   fuse.Owner{Uid: st.Uid, Gid: st.Gid},
		Blksize: 4096,
	}
	fillStat(st, a)
	a.Blocks = (a.Size + 511) / 512
	n.mu.Lock()
	n.last = *a
	n.mu.Unlock()
}

// heldStat returns the lstat of guest path p if it is a regular file the
// edits layer holds under one name (see edits.Edits.SetAttrHeld).
func (f *FS) heldStat(p string) (unix.Stat_t, bool) {
	if f.edits == nil {
		return unix.Stat_t{}, false
	}
	return f.edits.StatHeld(p)
}

// editTimeout is timeout for an entry of the edits.
func (f *FS) editTimeout() time.Duration {
	if f.cached() {
		return cachedTimeout
	}
	return liveTimeout
}

// fillStat copies what the host knows better than the view from st.
func fillStat(st *unix.Stat_t, a *fuse.Attr) {
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		a.Size = uint64(st.Size)
		a.Mtime, a.Mtimensec = uint64(st.Mtim.Sec), uint32(st.Mtim.Nsec)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		a.Nlink = uint32(st.Nlink)
	}
	a.Atime, a.Atimensec = uint64(st.Atim.Sec), uint32(st.Atim.Nsec)
	a.Ctime, a.Ctimensec = uint64(st.Ctim.Sec), uint32(st.Ctim.Nsec)
}

// cached reports whether the kernel may keep what it was told until told
// otherwise: the mount is read-only, or watched.
func (f *FS) cached() bool { return f.edits == nil || f.watching.Load() }

func contentSize(vn *overlay.Node) int64 {
	switch c := vn.Content.(type) {
	case overlay.Section:
		return c.N
	case overlay.Bytes:
		return int64(len(c))
	}
	return vn.Size
}

// toErrno maps an error to the errno the caller sees, keeping the one the
// operating system gave when there is one.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if errors.Is(err, os.ErrNotExist) {
		return syscall.ENOENT
	}
	if errors.Is(err, os.ErrExist) {
		return syscall.EEXIST
	}
	return syscall.EIO
}
