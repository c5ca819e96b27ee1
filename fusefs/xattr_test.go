package fusefs

import (
	"bytes"
	"errors"
	"log"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// newXattrWorkspace is newWorkspace with the provenance attribute served.
func newXattrWorkspace(t testing.TB) *workspace {
	t.Helper()
	w := setupWorkspace(t)
	w.opts.Xattrs = true
	w.mount(t)
	return w
}

// With --xattrs the mount has user.fledge.layer and nothing else: other
// user attributes do not exist, and the other namespaces are not supported
// at all, which is what lets ls -l stop asking for SELinux labels and ACLs
// per file. Nothing can be set.
func TestXattrNamespaces(t *testing.T) {
	w := newXattrWorkspace(t)
	p := w.path("opt/data/a.txt")
	buf := make([]byte, 256)
	if n, err := unix.Getxattr(p, layerXattr, buf); err != nil || n == 0 {
		t.Errorf("%s: %d bytes, %v", layerXattr, n, err)
	}
	if n, err := unix.Listxattr(p, buf); err != nil || string(buf[:n]) != layerXattr+"\x00" {
		t.Errorf("listxattr: %q, %v", buf[:max(n, 0)], err)
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
	if err := unix.Setxattr(p, "user.other", []byte("x"), 0); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("setxattr: %v, want %v", err, syscall.EOPNOTSUPP)
	}
}

// By default the mount has no attributes, and says so once: the kernel
// then stops asking for security.capability before every write and chown,
// which it does on FUSE for every file written.
func TestNoXattrsAskedOnWrites(t *testing.T) {
	w := setupWorkspace(t)
	var reqs bytes.Buffer
	w.opts.Debug, w.opts.Logger = true, log.New(&reqs, "", 0)
	w.mount(t)
	for _, name := range []string{"a", "b", "c"} {
		f, err := os.Create(w.path("tmp/" + name))
		must(t, err)
		for range 4 {
			_, err = f.Write([]byte("data\n"))
			must(t, err)
		}
		must(t, f.Chown(0, 0))
		must(t, f.Close())
	}
	buf := make([]byte, 64)
	if _, err := unix.Getxattr(w.path("etc/motd"), layerXattr, buf); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("getxattr %s: %v, want %v", layerXattr, err, syscall.EOPNOTSUPP)
	}
	if _, err := unix.Listxattr(w.path("etc/motd"), buf); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("listxattr: %v, want %v", err, syscall.EOPNOTSUPP)
	}
	w.unmount(t)
	if n := strings.Count(reqs.String(), " GETXATTR "); n > 1 {
		t.Errorf("%d GETXATTR requests for 12 writes and 3 chowns, want at most the first", n)
	}
}
