package fusefs

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The mount has user.fledge.layer and nothing else: other user attributes
// do not exist, and the other namespaces are not supported at all, which
// is what lets ls -l stop asking for SELinux labels and ACLs per file.
func TestXattrNamespaces(t *testing.T) {
	w := newWorkspace(t)
	p := w.path("opt/data/a.txt")
	buf := make([]byte, 256)
	if n, err := unix.Getxattr(p, layerXattr, buf); err != nil || n == 0 {
		t.Errorf("%s: %d bytes, %v", layerXattr, n, err)
	}
	for name, want := range map[string]syscall.Errno{
		"user.other":              syscall.ENODATA,
		"security.selinux":        syscall.EOPNOTSUPP,
		"system.posix_acl_access": syscall.EOPNOTSUPP,
		"trusted.overlay.opaque":  syscall.EOPNOTSUPP,
	} {
		if _, err := unix.Getxattr(p, name, buf); !errors.Is(err, want) {
			t.Errorf("getxattr %s: %v, want %v", name, err, want)
		}
	}
}
