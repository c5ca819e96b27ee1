// Package overlay is fledge's model of an initramfs: a stack of layers whose
// merged view every tool (packer, FUSE mount, inspector) reads.
//
// The vocabulary is small on purpose: an Entry is one file system object, a
// Layer yields entries, a Stack merges layers bottom to top into a View.
package overlay

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"
)

// Type is the kind of file system object an Entry describes.
type Type uint8

const (
	Regular Type = iota
	Dir
	Symlink
	CharDev
	BlockDev
	FIFO
	Socket
	// Whiteout marks a path (and everything below it) deleted from the
	// layers beneath. It never appears in a merged View.
	Whiteout
)

var typeNames = [...]string{"file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket", "whiteout"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is one object of a layer or of the merged view.
type Entry struct {
	// Path is clean and absolute ("/bin/sh"); the root is "/".
	Path string
	Type Type
	// Perm holds the permission bits plus setuid, setgid and sticky
	// (fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky).
	Perm     fs.FileMode
	UID, GID int
	// Size is the size of a regular file when the entry was made; Content
	// reports the size of the snapshot it actually reads.
	Size     int64
	Linkname string // symlink target, verbatim
	// Major and Minor are the device numbers of CharDev and BlockDev.
	Major, Minor uint32
	// MTime is the modification time the layer vouches for. The zero value
	// means "none": views then use the stack's epoch, so host times (which
	// differ on every checkout) never leak into an artifact.
	MTime time.Time
	// LinkID groups hard links: entries of one layer with the same non-empty
	// LinkID are one inode.
	LinkID string
	// Opaque, on a Dir, hides what lower layers have below it.
	Opaque bool
	// Implicit marks a directory a layer only needs as a parent of its
	// entries; it never replaces the metadata of a directory from below.
	Implicit bool
	Content  Content
	// HostStat is the lstat of the host file a HostFile Content names, as
	// the layer saw it when it read the host (nil when it took none): the
	// packer judges its stat index by it instead of statting the file again.
	HostStat *syscall.Stat_t

	// Layer names the layer the entry comes from; Source says where in that
	// layer (a host path for mappings, a URL or cache path for downloads).
	Layer  string
	Source string
	// NeededBy names, for an entry added because programs need it (a
	// shared library), those programs.
	NeededBy []string
}

// Mode returns the entry's full fs.FileMode (type and permission bits).
func (e *Entry) Mode() fs.FileMode {
	m := e.Perm & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch e.Type {
	case Dir:
		m |= fs.ModeDir
	case Symlink:
		m |= fs.ModeSymlink
	case CharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case BlockDev:
		m |= fs.ModeDevice
	case FIFO:
		m |= fs.ModeNamedPipe
	case Socket:
		m |= fs.ModeSocket
	}
	return m
}

// Content is the data of a regular file.
type Content interface {
	// Open returns a reader over one consistent snapshot of the data.
	Open() (Reader, error)
}

// Reader reads a snapshot of a file's content; Size is the snapshot's size.
type Reader interface {
	io.Reader
	io.ReaderAt
	io.Closer
	Size() int64
}

// CleanPath turns a guest path from any source (recipe, archive, tar) into
// the canonical absolute form, refusing anything that could climb out of
// the image root: ".." components are rejected, not resolved, because a
// hostile archive uses them to write outside the extraction directory.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q contains \"..\"", p)
		}
	}
	return path.Clean("/" + p), nil
}

// FromUnixMode converts a mode from the stat(2) world (S_IFMT bits included)
// into a Type and permission bits.
func FromUnixMode(mode uint32) (Type, fs.FileMode, error) {
	perm := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	var t Type
	switch mode & 0o170000 {
	case 0o100000:
		t = Regular
	case 0o040000:
		t = Dir
	case 0o120000:
		t = Symlink
	case 0o020000:
		t = CharDev
	case 0o060000:
		t = BlockDev
	case 0o010000:
		t = FIFO
	case 0o140000:
		t = Socket
	default:
		return 0, 0, fmt.Errorf("unknown file type in mode %#o", mode)
	}
	return t, perm, nil
}

// UnixMode returns the entry's mode in the stat(2) encoding used by cpio
// headers and FUSE attributes.
func (e *Entry) UnixMode() uint32 {
	m := uint32(e.Perm & fs.ModePerm)
	if e.Perm&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if e.Perm&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if e.Perm&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	switch e.Type {
	case Regular:
		m |= 0o100000
	case Dir:
		m |= 0o040000
	case Symlink:
		m |= 0o120000
	case CharDev:
		m |= 0o020000
	case BlockDev:
		m |= 0o060000
	case FIFO:
		m |= 0o010000
	case Socket:
		m |= 0o140000
	}
	return m
}
