package fusefs

import (
	"context"
	"path"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

var (
	_ = (fs.NodeCreater)((*node)(nil))
	_ = (fs.NodeMkdirer)((*node)(nil))
	_ = (fs.NodeMknoder)((*node)(nil))
	_ = (fs.NodeSymlinker)((*node)(nil))
	_ = (fs.NodeLinker)((*node)(nil))
	_ = (fs.NodeUnlinker)((*node)(nil))
	_ = (fs.NodeRmdirer)((*node)(nil))
	_ = (fs.NodeRenamer)((*node)(nil))
	_ = (fs.NodeSetattrer)((*node)(nil))
)

// writable returns the current view, or EROFS for a read-only mount, or
// EACCES for a caller the share mode keeps from writing.
func (n *node) writable(ctx context.Context) (*overlay.View, syscall.Errno) {
	if errno := n.mayChange(ctx); errno != 0 {
		return nil, errno
	}
	v, err := n.fsys.View()
	return v, toErrno(err)
}

// mayChange is writable for a change that needs no view.
func (n *node) mayChange(ctx context.Context) syscall.Errno {
	if n.fsys.edits == nil {
		return syscall.EROFS
	}
	return n.fsys.mayWrite(ctx)
}

// newEntry describes an object created by the caller: owned by them (by
// root for the user of a rootless mount), with the mode the kernel passed
// (the umask already applied), and the times of its making (no MTime).
func (f *FS) newEntry(ctx context.Context, p string, mode uint32) (overlay.Entry, syscall.Errno) {
	if len(path.Base(p)) > unix.NAME_MAX {
		return overlay.Entry{}, syscall.ENAMETOOLONG
	}
	t, perm, err := overlay.FromUnixMode(mode)
	if err != nil {
		return overlay.Entry{}, syscall.EINVAL
	}
	ent := overlay.Entry{Path: p, Type: t, Perm: perm}
	if c, ok := fuse.FromContext(ctx); ok {
		o := f.imageOwner(c.Owner)
		ent.UID, ent.GID = int(o.Uid), int(o.Gid)
	}
	return ent, 0
}

// make creates ent and returns the inode of what the view now shows.
func (n *node) make(ctx context.Context, ent overlay.Entry, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, errno := n.writable(ctx)
	if errno != 0 {
		return nil, errno
	}
	if err := n.fsys.edits.Create(v, ent); err != nil {
		return nil, toErrno(err)
	}
	n.fsys.changed()
	return n.Lookup(ctx, path.Base(ent.Path), out)
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ent, errno := n.fsys.newEntry(ctx, join(n.guestPath(), name), mode|syscall.S_IFREG)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	v, errno := n.writable(ctx)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	f, st, err := n.fsys.edits.CreateFile(v, ent)
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	// The reply comes from the new file, as for a SETATTR of it: the view
	// takes the change at the next request that needs it.
	n.fsys.changedReplied(ent.Path)
	ino := n.NewInode(ctx, &node{fsys: n.fsys}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: n.fsys.inoOf(ent.Path, overlay.Regular)})
	kid, ok := ino.Operations().(*node)
	if !ok {
		f.Close()
		return nil, nil, 0, syscall.EIO
	}
	kid.heldAttr(&st, &out.Attr)
	t := n.fsys.editTimeout()
	out.SetEntryTimeout(t)
	out.SetAttrTimeout(t)
	kid.openMu.Lock()
	defer kid.openMu.Unlock()
	h, errno := kid.editHandle(ctx, f, true)
	if errno != 0 {
		f.Close()
	}
	return ino, h, 0, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ent, errno := n.fsys.newEntry(ctx, join(n.guestPath(), name), mode|syscall.S_IFDIR)
	if errno != 0 {
		return nil, errno
	}
	return n.make(ctx, ent, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ent, errno := n.fsys.newEntry(ctx, join(n.guestPath(), name), mode)
	if errno != 0 {
		return nil, errno
	}
	ent.Major, ent.Minor = unix.Major(uint64(dev)), unix.Minor(uint64(dev))
	return n.make(ctx, ent, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ent, errno := n.fsys.newEntry(ctx, join(n.guestPath(), name), syscall.S_IFLNK|0o777)
	if errno != 0 {
		return nil, errno
	}
	ent.Linkname = target
	return n.make(ctx, ent, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	v, errno := n.writable(ctx)
	if errno != 0 {
		return nil, errno
	}
	var err error
	src, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	if err = n.fsys.edits.Link(v, src.guestPath(), join(n.guestPath(), name)); err != nil {
		return nil, toErrno(err)
	}
	n.fsys.changed()
	// The source is an edit now, in a hard-link group: the group keeps the
	// inode number the kernel knows the source by.
	if v, err = n.fsys.View(); err != nil {
		return nil, toErrno(err)
	}
	if vn, ok := v.Get(src.guestPath()); ok {
		n.fsys.alias(vn, src.StableAttr().Ino)
	}
	return n.Lookup(ctx, name, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, true)
}

func (n *node) remove(ctx context.Context, name string, dir bool) syscall.Errno {
	v, errno := n.writable(ctx)
	if errno != 0 {
		return errno
	}
	p := join(n.guestPath(), name)
	vn, ok := v.Get(p)
	switch {
	case !ok:
		return syscall.ENOENT
	case dir && vn.Type != overlay.Dir:
		return syscall.ENOTDIR
	case !dir && vn.Type == overlay.Dir:
		return syscall.EISDIR
	case dir && len(v.Children(vn)) > 0:
		return syscall.ENOTEMPTY
	}
	if err := n.fsys.edits.Remove(v, p); err != nil {
		return toErrno(err)
	}
	n.fsys.removed(p)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	v, errno := n.writable(ctx)
	if errno != 0 {
		return errno
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL
	}
	oldp, newp := join(n.guestPath(), name), join(np.guestPath(), newName)
	src, ok := v.Get(oldp)
	if !ok {
		return syscall.ENOENT
	}
	if dst, ok := v.Get(newp); ok {
		if errno := replaceable(v, src, dst, flags); errno != 0 {
			return errno
		}
	}
	if err := n.fsys.edits.Rename(v, oldp, newp); err != nil {
		return toErrno(err)
	}
	n.fsys.moved(oldp, newp, src.Type == overlay.Dir)
	return 0
}

// replaceable applies rename(2)'s rules for an existing destination.
func replaceable(v *overlay.View, src, dst *overlay.Node, flags uint32) syscall.Errno {
	switch {
	case flags&unix.RENAME_NOREPLACE != 0:
		return syscall.EEXIST
	case src.Type == overlay.Dir && dst.Type != overlay.Dir:
		return syscall.ENOTDIR
	case src.Type != overlay.Dir && dst.Type == overlay.Dir:
		return syscall.EISDIR
	case dst.Type == overlay.Dir && len(v.Children(dst)) > 0:
		return syscall.ENOTEMPTY
	}
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.mayChange(ctx); errno != 0 {
		return errno
	}
	a := attrOf(in)
	p := n.guestPath()
	// A file the edits made is changed where it is, and the reply comes
	// from the host: the view takes the change at the next request that
	// needs it, with the other changes made until then (tar x sets the
	// times, owner and mode of each file it writes, one request each).
	if st, ok, err := n.fsys.edits.SetAttrHeld(p, a); ok {
		if err != nil {
			return toErrno(err)
		}
		n.fsys.changedReplied(p)
		n.heldAttr(&st, &out.Attr)
		out.SetTimeout(n.fsys.editTimeout())
		return 0
	}
	v, errno := n.writable(ctx)
	if errno != 0 {
		return errno
	}
	if _, ok := v.Get(p); !ok {
		// Unlinked while open: only the open file is left to change.
		ef, ok := editOf(fh)
		if !ok {
			return syscall.ENOENT
		}
		if err := n.fsys.edits.ApplyToFile(ef.f, a); err != nil {
			return toErrno(err)
		}
		return n.Getattr(ctx, fh, out)
	}
	if err := n.fsys.edits.SetAttr(v, p, a); err != nil {
		return toErrno(err)
	}
	n.fsys.changedReplied(p)
	return n.Getattr(ctx, fh, out)
}

// attrOf is the change a SETATTR asks for.
func attrOf(in *fuse.SetAttrIn) edits.Attr {
	var a edits.Attr
	if m, ok := in.GetMode(); ok {
		m &= 0o7777
		a.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		uid := int(u)
		a.UID = &uid
	}
	if g, ok := in.GetGID(); ok {
		gid := int(g)
		a.GID = &gid
	}
	if s, ok := in.GetSize(); ok {
		size := int64(s)
		a.Size = &size
	}
	if t, ok := in.GetMTime(); ok {
		a.MTime = &t
	}
	if t, ok := in.GetATime(); ok {
		a.ATime = &t
	}
	// The kernel leaves clearing setuid and setgid to the mount (see
	// Mount): a truncate by a caller without CAP_FSETID asks for it. A
	// chown clears them by itself, done by fledge on the host.
	a.DropSetID = in.Valid&fuse.FATTR_KILL_SUIDGID != 0
	return a
}
