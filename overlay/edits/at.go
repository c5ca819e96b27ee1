package edits

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// The edits folder is only ever touched through directory file descriptors
// opened one component at a time with O_NOFOLLOW: names come from FUSE
// callers and are untrusted, and a symlink stored in the layer must never
// redirect a write to a host file outside it.

// checkName refuses names that could climb out of a directory or be
// mistaken for the layer's own bookkeeping: its temporary names, and in a
// folder of the first format its whiteouts.
func checkName(name string, legacy bool) error {
	reserved := metaPrefix
	if legacy {
		reserved = whiteoutPrefix
	}
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("name %q: %w", name, syscall.EINVAL)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL: %w", name, syscall.EINVAL)
	case strings.HasPrefix(name, reserved):
		return fmt.Errorf("name %q: names starting with %q are reserved for the edits' bookkeeping: %w",
			name, reserved, syscall.EPERM)
	}
	return nil
}

// splitGuest checks a guest path and splits it into its components.
func (e *Edits) splitGuest(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return nil, fmt.Errorf("guest path %q is not clean and absolute: %w", p, syscall.EINVAL)
	}
	parts := overlay.Components(p)
	legacy := e.legacy()
	for _, c := range parts {
		if err := checkName(c, legacy); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// formatMarker, in the folder's root, says its whiteouts are devices 0/0
// only, so a file ".wh.NAME" is the user's. Folders made by earlier
// versions lack it: there ".wh.NAME" deletes NAME, and such names stay
// reserved.
const formatMarker = metaPrefix + "format2"

// legacy reports whether the folder is of the first format. A folder not
// made yet will be made in the second.
func (e *Edits) legacy() bool {
	if e.format2.Load() {
		return false
	}
	var st unix.Stat_t
	if unix.Lstat(e.dir, &st) != nil {
		return false
	}
	if unix.Lstat(e.dir+"/"+formatMarker, &st) == nil {
		e.format2.Store(true)
		return false
	}
	return true
}

// oldWhiteout reports whether name in this folder may have an old-style
// whiteout ".wh.NAME" beside it.
func (e *Edits) oldWhiteout(name string) bool {
	return len(whiteoutPrefix)+len(name) <= unix.NAME_MAX && e.legacy()
}

// dirFD is an open directory of the edits folder.
type dirFD int

// close closes d; AT_FDCWD (a path relative to the working directory)
// has nothing to close.
func (d dirFD) close() {
	if d >= 0 {
		unix.Close(int(d))
	}
}

// names lists the entries of d.
func (d dirFD) names() ([]string, error) {
	fd, err := unix.Dup(int(d))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return f.Readdirnames(-1)
}

// readlink returns the target of symlink name in d.
func (d dirFD) readlink(name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(d), name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// openRoot opens the edits folder itself.
func (e *Edits) openRoot() (dirFD, error) {
	return dirFD(unix.AT_FDCWD).sub(e.dir)
}

// openDir opens the folder holding guest directory p, which must exist in
// the layer already (see copyUpDir).
func (e *Edits) openDir(p string) (dirFD, error) {
	parts, err := e.splitGuest(p)
	if err != nil {
		return -1, err
	}
	if d, ok := e.dirs.get(p); ok {
		return d, nil
	}
	d, err := e.openRoot()
	if err != nil {
		return -1, err
	}
	for _, c := range parts {
		next, err := d.sub(c)
		d.close()
		if err != nil {
			return -1, fmt.Errorf("edits %s: %w", p, err)
		}
		d = next
	}
	e.dirs.put(p, d)
	return d, nil
}

// holder opens the folder holding guest path p in the layer, which must
// exist there, and returns it with p's name in it. The layer's folder
// stands for the root (see ensureRoot), so the root's holder is the
// folder's parent on the host.
func (e *Edits) holder(p string) (dirFD, string, error) {
	if p == "/" {
		d, err := openHostDir(path.Dir(e.dir))
		return d, path.Base(e.dir), err
	}
	d, err := e.openDir(path.Dir(p))
	return d, path.Base(p), err
}

// sub opens the directory name in d. Reading the layer must not change
// the access times the mount shows, so it asks for O_NOATIME, which only
// the owner and root may.
func (d dirFD) sub(name string) (dirFD, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(int(d), name, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(int(d), name, flags, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", name, err)
	}
	return dirFD(fd), nil
}

// stat returns the lstat of name, or ok=false when it does not exist.
func (d dirFD) stat(name string) (st unix.Stat_t, ok bool, err error) {
	err = unix.Fstatat(int(d), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

// remove deletes name and everything below it, without following links.
func (d dirFD) remove(name string) error {
	st, ok, err := d.stat(name)
	if err != nil || !ok {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(int(d), name, 0)
	}
	sub, err := d.sub(name)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(sub), name)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = sub.remove(n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(int(d), name, unix.AT_REMOVEDIR)
}

// openFile opens name in d for reading or writing, never through a symlink.
// An open that may find an object already there does not block, so a FIFO
// swapped in on the host cannot hold the caller until a writer comes; a
// caller that reads or writes what it opened checks that it is a regular
// file.
func (d dirFD) openFile(name string, flag int, perm uint32) (*os.File, error) {
	if flag&(os.O_CREATE|os.O_EXCL) != os.O_CREATE|os.O_EXCL {
		flag |= unix.O_NONBLOCK
	}
	fd, err := unix.Openat(int(d), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
