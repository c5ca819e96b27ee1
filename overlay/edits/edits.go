// Package edits is the edits layer of a workspace: the changes made
// through a mount, kept in a folder on the host, so they survive remounts
// and are packed like any other layer. It sits over the model (package
// overlay), which knows nothing of it.
//
// The API:
//
//   - Open returns the layer kept in a folder, Dir the folder of a
//     recipe's workspace; LayerName is the name its entries carry as their
//     layer. The layer is handed on explicitly, beside the lower stack it
//     goes over (fusefs.New takes the pair): nothing finds it by looking at
//     a stack's top.
//   - As an overlay.Layer and overlay.Tracked (Name, Entries, Delta, At),
//     the layer goes on top of the lower stack's view (View.With, View.Update).
//   - Mutations take the view the caller shows (the lower view with the edits
//     on it) and copy up from it what they touch: CopyUp, Create, CreateFile,
//     Remove, Rename, Link, SetAttr (an Attr), SetAttrHeld, OpenFile and
//     DropSetID; Hold marks a write through an open file in progress. Add
//     is Create for another process than a live mount's.
//   - Stat and StatHeld read one object of the folder; the method Dir
//     names the folder.
//   - Changes lists the edits against the lower view, Reset drops them,
//     Problems names what a read had to leave out; Reload forgets what was
//     read after another process changed the folder, whose Stamp file Reset
//     and Add touch.
//
// Owners, modes, device numbers and times of the layer's objects are read
// and written in meta.go alone.
package edits

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// Edits is the top layer of a workspace: the changes made through the FUSE
// mount, kept on disk so they survive remounts and are packed like any
// other layer.
//
// On disk the layer mirrors the guest tree. New and changed objects are real
// files, directories, symlinks, hard links and device nodes with their real
// owners and modes. A deletion is a character device 0/0 in place of the
// deleted NAME, and a directory that hides everything below it from lower
// layers holds ".wh..wh..opq": the kernel overlayfs convention, so the
// folder reads the same in any tool that knows it, and a whiteout needs no
// longer name than the name it deletes. Empty files ".wh.NAME", the
// whiteouts earlier versions wrote, still read as deletions in a folder
// without the format marker (see legacy).
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

	// cmu guards the entries read from the folder, which the changes made
	// through this Edits keep up to date (see touched), so a change costs
	// what it touched, not a walk of every edit. gen counts changes, so a
	// read that raced with one is not kept.
	cmu sync.Mutex
	tr  *tree
	// problems are the entries left out because they could not be read.
	problems map[string]error
	gen      uint64
	// sorted is list's result until the next change.
	sorted []overlay.Entry
	// delta holds the changes since the last Delta call; lost is set when
	// the entries were dropped since (Reload), so they are unknown.
	delta []overlay.Delta
	lost  bool

	// dirs are the layer's folders kept open.
	dirs dirCache

	// format2 is set once the folder is known to be of the second format
	// (see legacy).
	format2 atomic.Bool
	// kind is the kind of folder (see userFolder in meta.go), once known.
	kind atomic.Int32

	// links are the symlink targets read (see linkTarget).
	linksMu sync.Mutex
	links   map[linkKey]string
}

const (
	whiteoutPrefix = ".wh."
	// metaPrefix names files of the layer's own bookkeeping: the opaque
	// marker, and temporary files of a copy-up in progress (which a crash
	// may leave behind and which must never be read as whiteouts).
	metaPrefix   = ".wh..wh."
	opaqueMarker = ".wh..wh..opq"
	// LayerName is the name of the edits layer.
	LayerName = "edits"
)

// Dir returns the edits folder of the workspace beside base (a recipe's
// folder): base/.fledge/edits.
func Dir(base string) string {
	return filepath.Join(base, overlay.Workspace, "edits")
}

// Open returns the edits layer stored in dir. The directory is created
// by the first change, so merely reading a workspace leaves no trace.
func Open(dir string) *Edits {
	return &Edits{dir: filepath.Clean(dir)}
}

// Name implements Layer.
func (e *Edits) Name() string { return LayerName }

// Dir returns the folder the layer lives in.
func (e *Edits) Dir() string { return e.dir }

// lockPath is next to the layer's folder, not in it, so it is never listed
// as an entry.
func (e *Edits) lockPath() string { return e.dir + ".lock" }

// Stamp returns the file a Reset or an Add touches when it has changed the
// layer, so a mount in another process that watches it knows its view is
// out of date. It is created (with the workspace folder) if missing.
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
// beyond read access to the folder. The folder is read once; after that
// the entries follow the changes made through this Edits, and Reload reads
// it again (after another process changed it).
func (e *Edits) Entries() ([]overlay.Entry, error) {
	for {
		e.cmu.Lock()
		if e.tr != nil {
			defer e.cmu.Unlock()
			return e.list(), nil
		}
		gen := e.gen
		e.cmu.Unlock()
		// Read without cmu: the read waits for changes in progress, and
		// those finish by updating the entries (touched).
		tr, problems, err := e.read()
		if err != nil {
			return nil, err
		}
		e.cmu.Lock()
		if e.gen == gen {
			e.tr, e.problems, e.sorted = tr, problems, nil
		}
		e.cmu.Unlock()
	}
}

// Reload forgets the entries read, so the next Entries reads the folder.
func (e *Edits) Reload() {
	e.cmu.Lock()
	e.forget()
	e.cmu.Unlock()
}

// forget drops the entries read; cmu is held.
func (e *Edits) forget() {
	e.dirs.clear()
	e.tr, e.problems, e.sorted = nil, nil, nil
	e.gen++
	e.lost = true
}

// list returns the entries sorted by path, the way a view applies them,
// and of one path the whiteout first: a crash between creating an object
// and removing the whiteout it replaces leaves both, where the object must
// win (and the lower object stay deleted). The slice is shared until the
// next change; callers copy it before changing it.
func (e *Edits) list() []overlay.Entry {
	if e.sorted != nil {
		return e.sorted
	}
	e.sorted = e.tr.below("/")
	return e.sorted
}

// read walks the whole folder, while no change is in progress.
func (e *Edits) read() (*tree, map[string]error, error) {
	unlock, err := e.lockExclusive()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	sc := scanned{e: e, tr: newTree(), problems: map[string]error{}}
	err = sc.scan("/")
	return sc.tr, sc.problems, err
}

// touched brings the entries up to date after a change at the guest paths
// ps: each path's subtree and whiteout, its parents (a change copies them
// up, and changes their times), and the other names of hard links it held
// or holds. Each is recorded for Delta. Anything that cannot be read drops
// the entries, for a full read next time.
func (e *Edits) touched(ps ...string) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	e.touchedLocked(ps...)
}

func (e *Edits) touchedLocked(ps ...string) {
	for _, p := range ps {
		// A folder there may be gone or moved, or another made in its place.
		e.dirs.drop(p)
	}
	e.gen++
	e.sorted = nil
	if e.tr == nil {
		return
	}
	for _, p := range ps {
		if _, err := e.splitGuest(p); err != nil {
			// The change refused it, so it changed nothing there.
			continue
		}
		if err := e.reread(p); err != nil {
			e.forget()
			return
		}
	}
}

// touchedAttr is touched after a change of p's own metadata. An object
// the layer held already is read again alone: nothing was made or removed
// in its folders, so they did not change, and a folder's metadata is not
// what is below it. A hard link is read with its other names.
func (e *Edits) touchedAttr(p string) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	var n *treeNode
	if e.tr != nil {
		n = e.tr.node(p, false)
	}
	if n == nil || !n.hasObj || n.obj.LinkID != "" {
		e.touchedLocked(p)
		return
	}
	e.gen++
	e.sorted = nil
	if _, err := e.restat(p); err != nil {
		e.forget()
	}
}

// climb reads the parents of p again after a change at p. Parents change
// from the bottom up: one changes only by something made or removed in it,
// which a copy-up of the one below it is. So the first parent the layer
// held before and holds still ends the climb: its times may have moved,
// but nothing was made in its parent.
func (e *Edits) climb(p string) error {
	for a := p; a != "/"; {
		a = path.Dir(a)
		held := e.tr.holds(a)
		if _, err := e.restat(a); err != nil {
			return err
		}
		if held && e.tr.holds(a) {
			break
		}
	}
	return nil
}

// touchedFile is touched for a regular file at p, name in d, whose lstat
// st after the change is at hand, with nothing below it to read: a file
// just made where the layer had nothing (made: its parents changed too),
// or a change of the metadata of one the layer holds under one name (see
// SetAttrHeld).
func (e *Edits) touchedFile(d dirFD, name, p string, st *unix.Stat_t, made bool) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.tr == nil {
		e.touchedLocked(p)
		return
	}
	e.gen++
	e.sorted = nil
	_, err := e.restatAs(d, name, p, st, true)
	if err == nil && made {
		err = e.climb(p)
	}
	if err != nil {
		e.forget()
	}
}

func (e *Edits) reread(p string) error {
	links := map[string]bool{}
	e.tr.dropBelow(p, false, func(ent overlay.Entry) {
		if ent.LinkID != "" {
			links[ent.LinkID] = true
		}
	})
	for k := range e.problems {
		if within(k, p) {
			delete(e.problems, k)
		}
	}
	sc := scanned{e: e, tr: e.tr, problems: e.problems}
	if err := sc.scan(p); err != nil {
		return err
	}
	e.tr.walk(p, func(n *treeNode) {
		if n.hasObj && n.obj.LinkID != "" {
			links[n.obj.LinkID] = true
		}
	})
	e.delta = append(e.delta, overlay.Delta{Path: p, Tree: true})
	if err := e.climb(p); err != nil {
		return err
	}
	for id := range links {
		for _, k := range e.tr.linked(id) {
			if !within(k, p) {
				if _, err := e.restat(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sameEntry reports whether two reads of one object found it unchanged.
func sameEntry(a, b *overlay.Entry) bool {
	return a.Type == b.Type && a.Perm == b.Perm && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.MTime.Equal(b.MTime) && a.Linkname == b.Linkname &&
		a.Major == b.Major && a.Minor == b.Minor && a.LinkID == b.LinkID && a.Opaque == b.Opaque
}

// within reports whether guest path k is p or below it.
func within(k, p string) bool {
	return k == p || p == "/" || strings.HasPrefix(k, p+"/")
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
