// Package fusefs mounts the merged view of an overlay.Stack, with the
// edits layer (package edits) over it, with FUSE.
//
// It holds no initramfs logic: it translates the stack's view into FUSE
// replies and FUSE changes into calls on the edits layer over it, so what
// the mount shows is exactly what the packer writes (modes, owners, sizes,
// link targets, device numbers and the mtime view.MTime gives).
//
// Provenance is the extended attribute "user.fledge.layer", served when
// the mount is asked to (Options.Xattrs). Its value is the layer name,
// followed for host-backed entries by a space and "host:" plus the
// absolute host path read (mappings, edits), or by "source:" plus the
// layer's source for other entries that name one:
//
//	skeleton
//	mappings host:/work/app/myapp
//	busybox source:https://busybox.net/downloads/binaries/1.35.0-x86_64-linux-musl/busybox
//
// The kernel allows user.* attributes on regular files and directories
// only, so symlinks and device nodes have none ("fledge why" explains
// those).
package fusefs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// refresh bounds how old the view of a writable stack may get when the
// host is polled instead of watched (see watch.go): the mappings layer
// reads the host when the view is built, so a mapped file that changed
// size, or a file added to a mapped folder, shows up within this time plus
// the attribute timeout (under a second in all).
const refresh = 500 * time.Millisecond

// FS is the state of one mount.
type FS struct {
	// stack holds the layers below the edits (all of a read-only mount).
	stack *overlay.Stack
	// edits is the layer changes go to; nil makes the mount read-only.
	edits *edits.Edits
	// passthrough is set when the kernel reads host files directly. Mount
	// stores it after the server already answers requests, hence atomic.
	passthrough atomic.Bool

	mu   sync.Mutex
	view *overlay.View
	// lower is the merged view of the layers below the edits. A change
	// through the mount only puts the edits on it again; refresh rebuilds it
	// from the host.
	lower *overlay.View
	// viewLower is the lower view the current view was built on.
	viewLower *overlay.View
	built     time.Time
	dirty     bool
	// gen counts views; refreshing is set while a background rebuild runs,
	// again when the host changed while it ran.
	gen        uint64
	refreshing bool
	again      bool
	inos       map[string]inoRec
	next       uint64
	// listed holds the directory listings of listedView, which is always
	// the current view: listing a folder again costs a lookup here.
	listedView *overlay.View
	listed     map[*overlay.Node][]fuse.DirEntry
	// replied holds the paths whose new attributes a change's own reply
	// carries (see changedReplied), until the next view is built.
	replied map[string]bool

	root *node
	// Set by Mount. inval is told of every new view; watcher, while
	// watching is set, reports every host change, and replies are then
	// cached for long (see timeout).
	inval    *invalidator
	watcher  *watcher
	watching atomic.Bool
	warn     func(string)
	// share, writer and xattrs are those of Options.
	share  Share
	writer int
	xattrs bool
	// user is the ordinary user who mounted (a rootless mount), who stands
	// for the image's root in it; nil when root mounted.
	user *fuse.Owner
}

type inoRec struct {
	ino  uint64
	kind overlay.Type
}

// New returns the file system of the edits ed over the stack lower.
// Changes go to ed; with ed nil the mount is read-only.
func New(lower *overlay.Stack, ed *edits.Edits) *FS {
	f := &FS{stack: lower, edits: ed, inos: map[string]inoRec{}, next: 2, warn: func(string) {}}
	f.root = &node{fsys: f}
	return f
}

// ReadOnly reports whether changes are refused.
func (f *FS) ReadOnly() bool { return f.edits == nil }

// View returns the current merged view. After a change through the mount
// it is rebuilt before anything is answered, so the change shows at once.
// A writable stack's view is rebuilt in the background while the old one
// keeps serving: when the watcher reports a host change, or, polling, when
// a request finds it older than refresh. The host side (mappings) changes
// on its own time, and walking a big mapped folder must not stall every
// request.
func (f *FS) View() (*overlay.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.view != nil && !f.dirty {
		if f.edits != nil && !f.watching.Load() && !f.refreshing && time.Since(f.built) > refresh {
			f.refreshing = true
			go f.refresh(f.gen)
		}
		return f.view, nil
	}
	var v, lower *overlay.View
	var changes []overlay.Delta
	var err error
	if f.view != nil && f.edits != nil && f.lower == f.viewLower {
		// Only the edits changed: the view takes what they report.
		lower = f.lower
		v, changes, err = f.view.Update(lower, f.edits)
	} else {
		v, lower, err = f.merge(f.lower)
	}
	if err != nil {
		return nil, fmt.Errorf("merging the layers: %w", err)
	}
	if f.lower != lower {
		f.built = time.Now()
	}
	// On the same lower view, only changes through the mount are new.
	f.inval.push(step{from: f.view, to: v, host: lower != f.viewLower, changes: changes, replied: f.replied})
	f.view, f.lower, f.viewLower, f.dirty, f.replied = v, lower, lower, false, nil
	f.gen++
	return v, nil
}

// merge returns the view and the lower view it was built on. A writable
// stack's layers below the edits are merged only when lower is nil (the
// first time, and by refresh), so a change through the mount costs what
// the edits hold, not a new walk of every mapped host file.
func (f *FS) merge(lower *overlay.View) (v, below *overlay.View, err error) {
	if f.edits == nil {
		v, err = f.stack.View()
		return v, nil, err
	}
	if lower == nil {
		if lower, err = f.stack.View(); err != nil {
			return nil, nil, err
		}
	}
	// What the edits report changed until now is in what they list now; a
	// change reported after this is applied again by the next Update,
	// which is harmless.
	f.edits.Delta()
	v, err = lower.With(f.edits)
	return v, lower, err
}

// hostChanged rebuilds the view in the background, once more after the
// running rebuild if one runs: it may have read the host before the change.
func (f *FS) hostChanged() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshing {
		f.again = true
		return
	}
	f.refreshing = true
	go f.refresh(f.gen)
}

// refresh rebuilds the view from the host in the background. A change
// through the mount meanwhile (a new generation) wins over the view, but
// the fresh lower view is kept, and the edits are put on it at once.
func (f *FS) refresh(gen uint64) {
	for {
		f.syncWatches()
		if f.edits != nil && !f.watching.Load() {
			// Polling, nothing says whether another process changed the
			// edits (a reset); watching, the stamp does (see watcher.run).
			f.edits.Reload()
		}
		v, lower, err := f.merge(nil)
		f.mu.Lock()
		again := f.again
		f.refreshing, f.again = again, false
		lost := false
		switch {
		case err != nil:
			// The host is in the middle of a change (a file listed, then
			// gone); the event that change sends, or the next poll,
			// retries.
		case gen == f.gen && !f.dirty:
			f.lower, f.built = lower, time.Now()
			f.inval.push(step{from: f.view, to: v, host: true})
			f.view, f.viewLower = v, lower
			f.gen++
		default:
			f.lower, f.built = lower, time.Now()
			f.dirty, lost = true, true
		}
		gen = f.gen
		f.mu.Unlock()
		if lost {
			// A cached reply is not asked again, so no request may come
			// to rebuild the view: rebuild it now.
			_, _ = f.View()
		}
		if !again {
			return
		}
	}
}

// syncWatches brings the watch list up to date before a merge. If a folder
// cannot be watched (the inotify limit), the mount falls back to polling,
// and the kernel is told to forget what it cached on the promise of being
// told of every change.
func (f *FS) syncWatches() {
	if !f.watching.Load() {
		return
	}
	err := f.watcher.sync()
	if err == nil || errors.Is(err, fsnotify.ErrClosed) {
		// Closed: the mount is gone, and with it the kernel's caches.
		return
	}
	f.watching.Store(false)
	f.watcher.close()
	f.inval.all()
	f.warn(fmt.Sprintf("%v; host changes are polled from now on", err))
}

// changed marks the view out of date after an edit.
func (f *FS) changed() {
	f.mu.Lock()
	f.dirty = true
	f.mu.Unlock()
}

// changedReplied is changed for a change whose reply carries p's new
// attributes (SETATTR, and CREATE of a file): the kernel takes them from the
// reply, and telling it they changed would only make it ask again.
func (f *FS) changedReplied(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	if f.replied == nil {
		f.replied = map[string]bool{}
	}
	f.replied[p] = true
}

// ino gives a node a stable inode number for the life of the mount: by
// path, or by hard-link group, so links share one inode as they will in
// the archive. A path whose type changed gets a new number, since the
// kernel must not see one inode change type.
func (f *FS) ino(n *overlay.Node) uint64 {
	return f.inoList([]*overlay.Node{n})[0]
}

// listing returns the entries of directory vn of view v, "." and ".."
// left out. The result is shared: callers must not change it.
func (f *FS) listing(v *overlay.View, vn *overlay.Node) []fuse.DirEntry {
	f.mu.Lock()
	list, ok := f.listed[vn]
	cached := ok && f.listedView == v
	f.mu.Unlock()
	if cached {
		return list
	}
	kids := v.Children(vn)
	inos := f.inoList(kids)
	list = make([]fuse.DirEntry, len(kids))
	for i, k := range kids {
		list[i] = fuse.DirEntry{Name: path.Base(k.Path), Mode: k.UnixMode() & syscall.S_IFMT, Ino: inos[i]}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Inode numbers change only with a new view, and only the current view
	// is kept: an older one serves requests that started before the swap.
	if v == f.view && !f.dirty {
		if f.listedView != v {
			f.listedView, f.listed = v, map[*overlay.Node][]fuse.DirEntry{}
		}
		f.listed[vn] = list
	}
	return list
}

// inoList is ino for a directory's worth of nodes under one lock.
func (f *FS) inoList(ns []*overlay.Node) []uint64 {
	out := make([]uint64, len(ns))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range ns {
		if n.Path == "/" {
			out[i] = 1
			continue
		}
		out[i] = f.inoLocked(inoKey(n), n.Type)
	}
	return out
}

// inoOf is ino for a node the view does not have yet: a file just made at
// guest path p, which has no other name.
func (f *FS) inoOf(p string, kind overlay.Type) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inoLocked(p, kind)
}

func (f *FS) inoLocked(key string, kind overlay.Type) uint64 {
	r, ok := f.inos[key]
	if !ok || r.kind != kind {
		r = inoRec{ino: f.next, kind: kind}
		f.next++
		f.inos[key] = r
	}
	return r.ino
}

func inoKey(n *overlay.Node) string {
	if n.LinkID != "" {
		return n.Layer + "\x00" + n.LinkID
	}
	return n.Path
}

// alias gives vn (and its hard-link group) the inode number ino.
func (f *FS) alias(vn *overlay.Node, ino uint64) {
	f.mu.Lock()
	f.inos[inoKey(vn)] = inoRec{ino: ino, kind: vn.Type}
	f.mu.Unlock()
}

// moved carries the inode numbers of oldp, and of everything below it if
// it is a directory, to newp, so a renamed file keeps its identity. Only
// a directory costs a look at every number.
func (f *FS) moved(oldp, newp string, dir bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	if r, ok := f.inos[oldp]; ok {
		delete(f.inos, oldp)
		f.inos[newp] = r
	}
	if !dir {
		return
	}
	for k, r := range f.inos {
		if rest, ok := below(k, oldp); ok {
			delete(f.inos, k)
			f.inos[newp+rest] = r
		}
	}
}

// removed forgets the inode number of p, which has nothing below it: a
// directory is removed only when empty.
func (f *FS) removed(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	delete(f.inos, p)
}

// below reports whether k is p or inside it, and the rest of k after p.
func below(k, p string) (string, bool) {
	if k == p {
		return "", true
	}
	if strings.HasPrefix(k, p+"/") {
		return k[len(p):], true
	}
	return "", false
}

func join(dir, name string) string { return path.Join(dir, name) }
