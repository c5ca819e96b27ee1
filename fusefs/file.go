package fusefs

import (
	"context"
	"io"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// contentFile reads a lower layer's content (an archive section, bytes in
// memory, a host file when passthrough is off) through the FUSE server.
type contentFile struct {
	r overlay.Reader
}

var (
	_ = (fs.FileReader)((*contentFile)(nil))
	_ = (fs.FileReleaser)((*contentFile)(nil))
)

func (c *contentFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := c.r.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (c *contentFile) Release(ctx context.Context) syscall.Errno {
	return toErrno(c.r.Close())
}

// hostFile is a read-only open of a host file that the kernel reads
// directly (FUSE passthrough); Read is the fallback when the kernel does
// not take the file descriptor.
type hostFile struct {
	f    *os.File
	node *node
}

var (
	_ = (fs.FilePassthroughFder)((*hostFile)(nil))
	_ = (fs.FileReader)((*hostFile)(nil))
	_ = (fs.FileReleaser)((*hostFile)(nil))
)

func (h *hostFile) PassthroughFd() (int, bool) { return int(h.f.Fd()), true }

func (h *hostFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(h.f.Fd(), off, len(dest)), 0
}

func (h *hostFile) Release(ctx context.Context) syscall.Errno {
	h.node.released(&h.node.passthrough)
	return toErrno(h.f.Close())
}

// editFile is an open file of the edits layer, read and written through
// the server. It never offers its descriptor for passthrough: a handle
// without one is refused by the kernel on an inode whose backing file is
// still a lower host file, instead of writing to that file (see Open).
type editFile struct {
	f    *os.File
	fsys *FS
	node *node
}

var (
	_ = (fs.FileReader)((*editFile)(nil))
	_ = (fs.FileWriter)((*editFile)(nil))
	_ = (fs.FileFsyncer)((*editFile)(nil))
	_ = (fs.FileFlusher)((*editFile)(nil))
	_ = (fs.FileReleaser)((*editFile)(nil))
)

func (e *editFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(e.f.Fd(), off, len(dest)), 0
}

func (e *editFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	release, errno := e.beginWrite(ctx)
	if errno != 0 {
		return 0, errno
	}
	defer release()
	n, err := e.f.WriteAt(data, off)
	return uint32(n), toErrno(err)
}

// beginWrite readies a write into e by fledge and returns what ends it:
// the edits are held, and setuid and setgid are cleared first for a caller
// other than root, as on a disk. The kernel leaves that to the mount (see
// Mount), and go-fuse does not pass on its request to; the kernel is told,
// since it may exec the file on the mode it keeps.
func (e *editFile) beginWrite(ctx context.Context) (func(), syscall.Errno) {
	if e.fsys.unprivileged(ctx) {
		dropped, err := e.fsys.edits.DropSetID(e.f, e.node.guestPath())
		if dropped {
			e.fsys.changed()
			e.node.NotifyContent(-1, 0)
		}
		if err != nil {
			return nil, toErrno(err)
		}
	}
	release, err := e.fsys.edits.Hold()
	return release, toErrno(err)
}

func (e *editFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return toErrno(e.f.Sync())
}

// Flush runs on every close(2), and a close has nothing to do: writes
// reach the host file at once, and the size and mtime they move are read
// from it (see fillEdit). "Not implemented" tells the kernel so, and it
// sends no FLUSH again on this mount, which saves a round trip per file.
func (e *editFile) Flush(ctx context.Context) syscall.Errno {
	return syscall.ENOSYS
}

func (e *editFile) Release(ctx context.Context) syscall.Errno {
	return toErrno(e.f.Close())
}

// edit returns e; the handles that wrap an editFile (see Open) have it too.
func (e *editFile) edit() *editFile { return e }

// editOf returns the open edit behind a handle, if it is one.
func editOf(fh fs.FileHandle) (*editFile, bool) {
	h, ok := fh.(interface{ edit() *editFile })
	if !ok {
		return nil, false
	}
	return h.edit(), true
}

var _ = (fs.NodeCopyFileRanger)((*node)(nil))

// CopyFileRange copies between two host files in the server, one request
// for what would otherwise be a read and a write per chunk (cp copies with
// copy_file_range(2)): from an edit or a lower host file into an edit.
// Content that is no host file (an archive's, bytes in memory) is "not
// supported", and the kernel copies it by reads and writes instead.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	src, ok := hostFileOf(fhIn)
	dst, isEdit := editOf(fhOut)
	if !ok || !isEdit || flags != 0 {
		return 0, syscall.EOPNOTSUPP
	}
	release, errno := dst.beginWrite(ctx)
	if errno != 0 {
		return 0, errno
	}
	defer release()
	in, to := int64(offIn), int64(offOut)
	c, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.f.Fd()), &to, int(min(length, 1<<30)), 0)
	return uint32(c), toErrno(err)
}

// hostFileOf returns the host file a handle reads, if it reads one.
func hostFileOf(fh fs.FileHandle) (*os.File, bool) {
	if h, ok := fh.(*hostFile); ok {
		return h.f, true
	}
	if ef, ok := editOf(fh); ok {
		return ef.f, true
	}
	return nil, false
}
