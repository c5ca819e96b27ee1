package fusefs

import (
	"context"
	"fmt"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Share says which users other than the one running fledge may use a
// mount. Whatever is written through a writable mount lands in the image,
// so letting users read does not let them write.
type Share int

const (
	// ShareRead lets every user browse with the permissions the image
	// shows (allow_other and default_permissions), and takes changes only
	// from root and Options.Writer: nobody else can plant a file in the
	// image, not even in its world-writable /tmp.
	ShareRead Share = iota
	// ShareNone keeps other users out entirely: only the user who mounted
	// (root, or an ordinary user) sees the mount.
	ShareNone
	// ShareWrite lets every user read and write as the image's
	// permissions allow, the way a disk does (pjdfstest needs it, since it
	// switches users).
	ShareWrite
)

// ParseShare reads the value of --share.
func ParseShare(s string) (Share, error) {
	switch s {
	case "read":
		return ShareRead, nil
	case "none":
		return ShareNone, nil
	case "write":
		return ShareWrite, nil
	}
	return 0, fmt.Errorf("--share %q: want none, read or write", s)
}

// mayWrite refuses a change from a caller the share mode keeps from
// writing. With ShareNone the kernel lets nobody but root in at all.
func (f *FS) mayWrite(ctx context.Context) syscall.Errno {
	if f.share != ShareRead {
		return 0
	}
	c, ok := fuse.FromContext(ctx)
	if !ok || !f.unprivileged(ctx) || c.Uid == uint32(f.writer) {
		return 0
	}
	return syscall.EACCES
}

// unprivileged reports whether the caller is not root, which stands for
// lacking CAP_FSETID: FUSE tells the caller's ids, not its capabilities.
// The user of a rootless mount is the image's root.
func (f *FS) unprivileged(ctx context.Context) bool {
	c, ok := fuse.FromContext(ctx)
	return ok && f.imageOwner(c.Owner).Uid != 0
}

// imageOwner is who the caller o is in the image: the user of a rootless
// mount is root (and their group root's), anyone else is who they are.
func (f *FS) imageOwner(o fuse.Owner) fuse.Owner {
	if f.user == nil {
		return o
	}
	if o.Uid == f.user.Uid {
		o.Uid = 0
	}
	if o.Gid == f.user.Gid {
		o.Gid = 0
	}
	return o
}

var _ = (fs.NodeAccesser)((*node)(nil))

// Access answers access(2) and chdir, which the kernel asks the mount only
// when it checks no permissions itself: in a rootless mount (see Mount).
// The image's root may read and write anything, and execute what has an
// execute bit or is a folder; anyone else (through --share) gets what the
// image's modes give them by owner, group or others.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	var out fuse.AttrOut
	if errno := n.Getattr(ctx, nil, &out); errno != 0 {
		return errno
	}
	c, ok := fuse.FromContext(ctx)
	if !ok || permits(n.fsys.imageOwner(c.Owner), &out.Attr, mask) {
		return 0
	}
	return syscall.EACCES
}

// permits reports whether the caller o may access a as mask (R_OK, W_OK,
// X_OK) asks.
func permits(o fuse.Owner, a *fuse.Attr, mask uint32) bool {
	mask &= unix.R_OK | unix.W_OK | unix.X_OK
	if o.Uid == 0 {
		return mask&unix.X_OK == 0 || a.Mode&unix.S_IFMT == unix.S_IFDIR || a.Mode&0o111 != 0
	}
	perm := a.Mode & 0o7
	switch {
	case o.Uid == a.Uid:
		perm = a.Mode >> 6 & 0o7
	case o.Gid == a.Gid:
		perm = a.Mode >> 3 & 0o7
	}
	return mask&^perm == 0
}
