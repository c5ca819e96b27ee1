package fusefs

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
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
		a.Nlink = 2
	case overlay.Symlink:
		a.Size = uint64(len(vn.Linkname))
	case overlay.CharDev, overlay.BlockDev:
		a.Rdev = uint32(unix.Mkdev(vn.Major, vn.Minor))
	case overlay.Regular:
		a.Size = uint64(contentSize(vn))
		if host, ok := vn.Content.(overlay.HostFile); ok && vn.Layer == overlay.EditsLayer {
			f.fillEdit(string(host), a)
		}
	}
	a.Blksize = 4096
	a.Blocks = (a.Size + 511) / 512
}

// fillEdit refreshes what writes through open files change without a new
// view: size, mtime and the link count. Mapped files need no such care:
// the view re-reads them every refresh interval.
func (f *FS) fillEdit(host string, a *fuse.Attr) {
	var st unix.Stat_t
	if unix.Lstat(host, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	a.Size = uint64(st.Size)
	mt := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	a.SetTimes(&mt, &mt, &mt)
	a.Nlink = uint32(st.Nlink)
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
