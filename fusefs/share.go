package fusefs

import (
	"context"
	"fmt"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
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
	if !ok || c.Uid == 0 || c.Uid == uint32(f.writer) {
		return 0
	}
	return syscall.EACCES
}

// unprivileged reports whether the caller is not root, which stands for
// lacking CAP_FSETID: FUSE tells the caller's ids, not its capabilities.
func unprivileged(ctx context.Context) bool {
	c, ok := fuse.FromContext(ctx)
	return ok && c.Uid != 0
}
