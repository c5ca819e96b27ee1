package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Edits is the top layer of a workspace: the changes made through the FUSE
// mount, kept on disk so they survive remounts and are packed like any
// other layer.
//
// On disk the layer mirrors the guest tree. New and changed objects are real
// files, directories, symlinks, hard links and device nodes with their real
// owners and modes. A deletion is an empty file ".wh.NAME" next to the
// deleted NAME, and a directory that hides everything below it from lower
// layers holds ".wh..wh..opq": the OCI and overlayfs convention, so the
// folder reads the same in any tool that knows it.
type Edits struct {
	dir string

	// mu guards users and lockFile. Mutations share one flock on the lock
	// file (taken by the first, released by the last) and Entries takes it
	// exclusively, so a pack in another process never lists the layer
	// halfway through an operation.
	mu       sync.Mutex
	users    int
	lockFile *os.File
	// op serializes changes of the tree (see begin).
	op sync.Mutex
}

const (
	whiteoutPrefix = ".wh."
	// metaPrefix names files of the layer's own bookkeeping: the opaque
	// marker, and temporary files of a copy-up in progress (which a crash
	// may leave behind and which must never be read as whiteouts).
	metaPrefix   = ".wh..wh."
	opaqueMarker = ".wh..wh..opq"
	// EditsLayer is the name of the edits layer.
	EditsLayer = "edits"
)

// OpenEdits returns the edits layer stored in dir. The directory is created
// by the first change, so merely reading a workspace leaves no trace.
func OpenEdits(dir string) *Edits {
	return &Edits{dir: filepath.Clean(dir)}
}

// Name implements Layer.
func (e *Edits) Name() string { return EditsLayer }

// Dir returns the folder the layer lives in.
func (e *Edits) Dir() string { return e.dir }

// lockPath is next to the layer's folder, not in it, so it is never listed
// as an entry.
func (e *Edits) lockPath() string { return e.dir + ".lock" }

// Stamp returns the file a Reset touches when it has changed the layer, so
// a mount in another process that watches it knows its view is out of
// date. It is created (with the workspace folder) if missing.
func (e *Edits) Stamp() (string, error) {
	f, err := e.openLock()
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// openLock opens the lock file, creating it and the workspace folder.
func (e *Edits) openLock() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(e.dir), 0o755); err != nil {
		return nil, fmt.Errorf("edits: %w", err)
	}
	f, err := os.OpenFile(e.lockPath(), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("edits lock: %w", err)
	}
	return f, nil
}

// stamp touches the file Stamp names.
func (e *Edits) stamp() error {
	now := time.Now()
	if err := os.Chtimes(e.lockPath(), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("edits lock: %w", err)
	}
	return nil
}

// Entries implements Layer. It only reads metadata (lstat, readlink), and
// contents are opened when a view asks, so listing needs no privileges
// beyond read access to the folder.
func (e *Edits) Entries() ([]Entry, error) {
	unlock, err := e.lockExclusive()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Lstat(e.dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out, whiteouts []Entry
	opaque := map[string]bool{}
	err = filepath.WalkDir(e.dir, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(e.dir, host)
		if err != nil {
			return err
		}
		guest := path.Clean("/" + filepath.ToSlash(rel))
		name := d.Name()
		switch {
		case guest == "/":
		case name == opaqueMarker:
			opaque[path.Dir(guest)] = true
			return nil
		case strings.HasPrefix(name, metaPrefix):
			return nil
		case strings.HasPrefix(name, whiteoutPrefix):
			whiteouts = append(whiteouts, Entry{
				Path: path.Join(path.Dir(guest), strings.TrimPrefix(name, whiteoutPrefix)),
				Type: Whiteout, Layer: EditsLayer, Source: host,
			})
			return nil
		}
		ent, err := hostStatEntry(host, guest)
		if err != nil {
			return err
		}
		out = append(out, ent)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the edits in %s: %w", e.dir, err)
	}
	for i := range out {
		if out[i].Type == Dir && opaque[out[i].Path] {
			out[i].Opaque = true
		}
	}
	// Whiteouts first: a view applies entries of one path in the order
	// given, and a crash between creating an object and removing the
	// whiteout it replaces leaves both, where the object must win (and
	// the lower object stay deleted).
	return append(whiteouts, out...), nil
}

// hostStatEntry describes the object at host, never following a symlink.
func hostStatEntry(host, guest string) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(host, &st); err != nil {
		return Entry{}, &os.PathError{Op: "lstat", Path: host, Err: err}
	}
	t, perm, err := FromUnixMode(st.Mode)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", host, err)
	}
	ent := Entry{
		Path: guest, Type: t, Perm: perm,
		UID: int(st.Uid), GID: int(st.Gid),
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
		Layer: EditsLayer, Source: host,
	}
	switch t {
	case Regular:
		ent.Size = st.Size
		ent.Content = HostFile(host)
	case Symlink:
		if ent.Linkname, err = os.Readlink(host); err != nil {
			return Entry{}, err
		}
	case CharDev, BlockDev:
		ent.Major, ent.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	if t != Dir && st.Nlink > 1 {
		ent.LinkID = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ent, nil
}

// lockExclusive waits until no mutation is in progress and keeps new ones
// out until the returned function is called.
func (e *Edits) lockExclusive() (func(), error) {
	f, err := os.Open(e.lockPath())
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing was ever written, so there is nothing to be consistent with.
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("edits lock: %w", err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("edits lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Hold marks a mutation in progress (a write through an open file, say)
// and returns the function that ends it.
func (e *Edits) Hold() (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.users == 0 {
		if e.lockFile == nil {
			f, err := e.openLock()
			if err != nil {
				return nil, err
			}
			e.lockFile = f
		}
		if err := flock(e.lockFile, unix.LOCK_SH); err != nil {
			return nil, fmt.Errorf("edits lock %s: %w", e.lockPath(), err)
		}
	}
	e.users++
	return e.release, nil
}

func (e *Edits) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users--
	if e.users == 0 {
		_ = flock(e.lockFile, unix.LOCK_UN)
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
