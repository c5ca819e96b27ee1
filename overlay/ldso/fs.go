package ldso

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Kind is the type of a file system object, as far as the loader cares.
type Kind uint8

const (
	Absent Kind = iota
	File        // a regular file
	Dir
	Symlink
	Other
)

// Stat describes the object at a path.
type Stat struct {
	Kind Kind
	Link string // a symlink's target, verbatim
}

// FS is a tree the loader searches. Paths are clean and absolute, in the
// tree's own terms: a host sysroot answers "/lib/libc.so.6" from below its
// root, and absolute symlinks are taken relative to that root.
type FS interface {
	// Lstat describes p without following a symlink in its last
	// component; symlinks among its parents are followed.
	Lstat(p string) Stat
	// Open opens the regular file at p (a symlink in its last component
	// is not followed).
	Open(p string) (Reader, error)
	// ReadDir lists the names in the directory p, sorted.
	ReadDir(p string) []string
	// Key identifies the content of the regular file at p for a cache, or
	// is nil when it cannot be told without reading the file.
	Key(p string) any
	// HostPath is the host file behind p, "" when there is none.
	HostPath(p string) string
}

// Host is the build host's tree below Root ("/" for the host itself), with
// chroot semantics: no symlink leads out of Root.
type Host struct{ Root string }

// fileKey identifies a host file's content: a rebuilt file gets a new
// inode, size or mtime.
type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func (h Host) root() string {
	if h.Root == "" {
		return "/"
	}
	return h.Root
}

// real returns the host path of p with its parents' symlinks resolved
// inside the root, the last component left as it is.
func (h Host) real(p string) (string, bool) {
	p = path.Clean("/" + p)
	if h.root() == "/" {
		// The kernel follows the parents' symlinks just so, in one call.
		return p, true
	}
	dir, ok := h.resolveDir(path.Dir(p), 0)
	if !ok {
		return "", false
	}
	return filepath.Join(h.root(), dir, path.Base(p)), true
}

// resolveDir follows symlinks in every component of dir and returns the
// real directory, relative to the root.
func (h Host) resolveDir(dir string, hops int) (string, bool) {
	cur := "/"
	for _, name := range strings.Split(strings.Trim(dir, "/"), "/") {
		if name == "" {
			continue
		}
		next := path.Join(cur, name)
		fi, err := os.Lstat(filepath.Join(h.root(), next))
		if err != nil {
			return "", false
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if hops++; hops > maxHops {
				return "", false
			}
			target, err := os.Readlink(filepath.Join(h.root(), next))
			if err != nil {
				return "", false
			}
			if !strings.HasPrefix(target, "/") {
				target = path.Join(cur, target)
			}
			real, ok := h.resolveDir(path.Clean("/"+target), hops)
			if !ok {
				return "", false
			}
			next = real
		case !fi.IsDir():
			return "", false
		}
		cur = next
	}
	return cur, true
}

// maxHops is the kernel's limit of symlinks followed in one lookup.
const maxHops = 40

// Lstat implements FS.
func (h Host) Lstat(p string) Stat {
	real, ok := h.real(p)
	if !ok {
		return Stat{}
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return Stat{}
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return Stat{Kind: File}
	case m.IsDir():
		return Stat{Kind: Dir}
	case m&os.ModeSymlink != 0:
		target, err := os.Readlink(real)
		if err != nil {
			return Stat{}
		}
		return Stat{Kind: Symlink, Link: target}
	}
	return Stat{Kind: Other}
}

// Open implements FS.
func (h Host) Open(p string) (Reader, error) {
	real, ok := h.real(p)
	if !ok {
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.ENOENT}
	}
	// Non-blocking, and regular files only: a hostile DT_NEEDED may name a
	// FIFO or a /proc file that blocks a reader.
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EINVAL}
	}
	return f, nil
}

// ReadDir implements FS.
func (h Host) ReadDir(p string) []string {
	dir, ok := h.resolveDir(p, 0)
	if !ok {
		return nil
	}
	ents, err := os.ReadDir(filepath.Join(h.root(), dir))
	if err != nil {
		return nil
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names
}

// Key implements FS.
func (h Host) Key(p string) any {
	real, ok := h.real(p)
	if !ok {
		return nil
	}
	return statKey(real)
}

// statKey is the cache key of a host file, nil when it cannot be stat'ed.
func statKey(host string) any {
	var st syscall.Stat_t
	if err := syscall.Lstat(host, &st); err != nil {
		return nil
	}
	return fileKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
}

// HostPath implements FS: the path with every symlinked parent resolved.
func (h Host) HostPath(p string) string {
	real, ok := h.real(p)
	if !ok {
		return ""
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(real))
	if err != nil {
		return real
	}
	return filepath.Join(dir, filepath.Base(real))
}
