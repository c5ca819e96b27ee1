package fusefs

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// node is one inode of the mount. It stores no data of its own: every call
// looks its path up in the current view, so the layers stay the source of
// truth.
type node struct {
	fs.Inode
	fsys *FS

	// openMu serializes opens, so a copy-up and the choice of handle
	// for a concurrent open cannot interleave.
	openMu sync.Mutex
	mu     sync.Mutex
	// last is the attributes last replied, for an open file whose path
	// is gone (unlinked while open).
	last fuse.Attr
	// passthrough counts open handles the kernel serves from a host file
	// directly, and backing is the file the first one was of (see Open);
	// cached counts the handles it serves through the server while
	// passthrough is on.
	passthrough, cached int
	backing             fileID
}

var (
	_ = (fs.NodeLookuper)((*node)(nil))
	_ = (fs.NodeGetattrer)((*node)(nil))
	_ = (fs.NodeReaddirer)((*node)(nil))
	_ = (fs.NodeReadlinker)((*node)(nil))
	_ = (fs.NodeGetxattrer)((*node)(nil))
	_ = (fs.NodeListxattrer)((*node)(nil))
	_ = (fs.NodeSetxattrer)((*node)(nil))
	_ = (fs.NodeRemovexattrer)((*node)(nil))
	_ = (fs.NodeOpener)((*node)(nil))
)

// Root returns the root inode to mount.
func (f *FS) Root() fs.InodeEmbedder { return f.root }

// guestPath is the node's path in the image; the kernel never looks up
// below a symlink, so it names directories only on the way.
//
// An inode whose last name is gone (unlinked while open, or a removed
// folder a process is still in) has no path: go-fuse's Path would give ""
// and so the root. It gets a path no view holds and no change accepts.
func (n *node) guestPath() string {
	if _, parent := n.Parent(); parent == nil && !n.IsRoot() {
		return orphanPath
	}
	return "/" + n.Path(nil)
}

// orphanPath names no path: a NUL is in no name.
const orphanPath = "/\x00unlinked"

// lookup returns the view and the node at the inode's path.
func (n *node) lookup() (*overlay.View, *overlay.Node, syscall.Errno) {
	v, err := n.fsys.View()
	if err != nil {
		return nil, nil, toErrno(err)
	}
	vn, ok := v.Get(n.guestPath())
	if !ok {
		return v, nil, syscall.ENOENT
	}
	return v, vn, 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	// The longest name the mount stores is the host's NAME_MAX, as on the
	// file systems the edits live on; the kernel leaves the check to us.
	if len(name) > unix.NAME_MAX {
		return nil, syscall.ENAMETOOLONG
	}
	v, err := n.fsys.View()
	if err != nil {
		return nil, toErrno(err)
	}
	vn, ok := v.Get(join(n.guestPath(), name))
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, v, vn, out), 0
}

// child makes (or finds, by inode number) the inode of vn below n.
func (n *node) child(ctx context.Context, v *overlay.View, vn *overlay.Node, out *fuse.EntryOut) *fs.Inode {
	n.fsys.fill(v, vn, &out.Attr)
	t := n.fsys.timeout(vn)
	out.SetEntryTimeout(t)
	out.SetAttrTimeout(t)
	kid := &node{fsys: n.fsys, last: out.Attr}
	return n.NewInode(ctx, kid, fs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: out.Attr.Ino})
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	// A file the edits made needs no view (see Setattr): a stat of it,
	// after a write, say, is answered while the view still waits for the
	// file's other changes. Only regular files are looked for there; the
	// folder the kernel asks for after every create is not.
	if n.StableAttr().Mode == syscall.S_IFREG {
		if st, ok := n.fsys.heldStat(n.guestPath()); ok {
			n.heldAttr(&st, &out.Attr)
			out.SetTimeout(n.fsys.editTimeout())
			return 0
		}
	}
	v, vn, errno := n.lookup()
	n.mu.Lock()
	defer n.mu.Unlock()
	switch errno {
	case syscall.ENOENT:
		out.Attr = n.last
	case 0:
		n.fsys.fill(v, vn, &out.Attr)
		out.SetTimeout(n.fsys.timeout(vn))
	default:
		return errno
	}
	// An open file of the edits knows best, unlinked (nlink 0) too.
	if ef, ok := editOf(fh); ok {
		var st unix.Stat_t
		if unix.Fstat(int(ef.f.Fd()), &st) == nil {
			fillStat(&st, &out.Attr)
		}
	}
	n.last = out.Attr
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	v, vn, errno := n.lookup()
	if errno != 0 {
		return nil, errno
	}
	kids := n.fsys.listing(v, vn)
	// "." and ".." are listed by the file system, not added by the kernel.
	parent := n.StableAttr().Ino
	if _, p := n.Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	list := make([]fuse.DirEntry, 2, len(kids)+2)
	list[0] = fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: n.StableAttr().Ino}
	list[1] = fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent}
	return fs.NewListDirStream(append(list, kids...)), 0
}

var _ = (fs.NodeOpendirHandler)((*node)(nil))

// OpendirHandle opens a directory. Where the kernel keeps entries until
// told otherwise, it may keep the listing too (FOPEN_CACHE_DIR), so listing
// a folder again costs no request; see invalidator.listing for how it
// learns that a listing changed.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	var fl uint32
	if n.fsys.cached() {
		fl = fuse.FOPEN_CACHE_DIR
	}
	return &dirHandle{n: n}, fl, 0
}

// dirHandle lists a directory from the view current at the first read, not
// at the open: a listing asked for after a change must not come from the
// view before it (see invalidator.listing).
type dirHandle struct {
	n  *node
	ds fs.DirStream
}

var (
	_ = (fs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fs.FileSeekdirer)((*dirHandle)(nil))
)

// stream lists the directory if that was not done yet.
func (d *dirHandle) stream(ctx context.Context) syscall.Errno {
	if d.ds != nil {
		return 0
	}
	ds, errno := d.n.Readdir(ctx)
	d.ds = ds
	return errno
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := d.stream(ctx); errno != 0 {
		return nil, errno
	}
	if !d.ds.HasNext() {
		return nil, 0
	}
	e, errno := d.ds.Next()
	return &e, errno
}

// Seekdir to the start lists the directory afresh, as rewinddir(3) does on
// a disk; other offsets are positions in the listing already made.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		d.ds = nil
		return 0
	}
	if errno := d.stream(ctx); errno != 0 {
		return errno
	}
	if sd, ok := d.ds.(fs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	_, vn, errno := n.lookup()
	if errno != 0 {
		return nil, errno
	}
	if vn.Type != overlay.Symlink {
		return nil, syscall.EINVAL
	}
	return []byte(vn.Linkname), 0
}

const layerXattr = "user.fledge.layer"

// noXattrs is the answer to every attribute request of a mount without
// Options.Xattrs: ENOSYS, which the kernel remembers, so it answers "not
// supported" itself from then on and asks the mount nothing more. It
// matters for writes: the kernel asks for security.capability before every
// write(2) and chown(2) on a FUSE file system (it cannot know that no file
// has one), about three requests per file for tar x. The image has no
// attributes anyway, newc cannot carry them.
const noXattrs = syscall.ENOSYS

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if !n.fsys.xattrs {
		return 0, noXattrs
	}
	if attr != layerXattr {
		return 0, noXattr(attr)
	}
	_, vn, errno := n.lookup()
	if errno != 0 {
		return 0, errno
	}
	return copyAttr(provenance(vn), dest)
}

// noXattr is the answer for an attribute the mount does not have. Outside
// the user namespace it is "not supported", not "no such attribute": the
// kernel caches no xattr answer of a FUSE file system, but ls -l (coreutils)
// remembers a file system without SELinux labels or ACL support and stops
// asking for them, which saves two requests per file listed.
func noXattr(name string) syscall.Errno {
	if strings.HasPrefix(name, "user.") {
		return fs.ENOATTR
	}
	return syscall.EOPNOTSUPP
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if !n.fsys.xattrs {
		return 0, noXattrs
	}
	return copyAttr(layerXattr+"\x00", dest)
}

// Setxattr and Removexattr are refused for good: nothing would keep an
// attribute into the image.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOSYS
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOSYS
}

func copyAttr(val string, dest []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(val)), 0
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// provenance is the value of user.fledge.layer (see the package comment).
func provenance(vn *overlay.Node) string {
	switch {
	case vn.Source == "":
		return vn.Layer
	case hostBacked(vn):
		return vn.Layer + " host:" + vn.Source
	default:
		return vn.Layer + " source:" + vn.Source
	}
}

// hostBacked reports whether the node's data or metadata is read from a
// live host path: mapped files and folders, and edits.
func hostBacked(vn *overlay.Node) bool {
	if _, ok := vn.Content.(overlay.HostFile); ok {
		return true
	}
	return vn.Layer == edits.LayerName || vn.Layer == overlay.MappingsLayer
}

var _ = (fs.NodeStatfser)((*node)(nil))

// Statfs reports the space of the folder edits are written to, which is
// what a write through the mount can fill; a read-only mount has none.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if n.fsys.edits == nil {
		return 0
	}
	// The edits folder may not exist yet; the workspace holding it does.
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(filepath.Dir(n.fsys.edits.Dir())), &st); err != nil {
		return toErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}
