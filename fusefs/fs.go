// Package fusefs mounts the merged view of an overlay.Stack with FUSE.
//
// It holds no initramfs logic: it translates the stack's view into FUSE
// replies and FUSE changes into calls on the stack's edits layer, so what
// the mount shows is exactly what the packer writes (modes, owners, sizes,
// link targets, device numbers and the mtime view.MTime gives).
//
// Provenance is the extended attribute "user.fledge.layer". Its value is
// the layer name, followed for host-backed entries by a space and
// "host:" plus the absolute host path read (mappings, edits), or by
// "source:" plus the layer's source for other entries that name one:
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
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// refresh bounds how old the view of a writable stack may get: the
// mappings layer reads the host when the view is built, so a mapped file
// that changed size, or a file added to a mapped folder, shows up within
// this time plus the attribute timeout (under a second in all).
const refresh = 500 * time.Millisecond

// FS is the state of one mount.
type FS struct {
	stack *overlay.Stack
	// edits is the stack's top layer when it is an *overlay.Edits; nil
	// makes the mount read-only.
	edits *overlay.Edits
	// passthrough is set when the kernel reads host files directly. Mount
	// stores it after the server already answers requests, hence atomic.
	passthrough atomic.Bool

	mu   sync.Mutex
	view *overlay.View
	// lower is the merged view of the layers below the edits. A change
	// through the mount only puts the edits on it again; refresh rebuilds it
	// from the host.
	lower *overlay.View
	built time.Time
	dirty bool
	// gen counts views; refreshing is set while a background rebuild runs.
	gen        uint64
	refreshing bool
	inos       map[string]inoRec
	next       uint64
}

type inoRec struct {
	ino  uint64
	kind overlay.Type
}

// New returns the file system of stack. Changes go to the stack's top
// layer if it is an edits layer; otherwise the mount is read-only.
func New(stack *overlay.Stack) *FS {
	f := &FS{stack: stack, inos: map[string]inoRec{}, next: 2}
	if n := len(stack.Layers); n > 0 {
		f.edits, _ = stack.Layers[n-1].(*overlay.Edits)
	}
	return f
}

// ReadOnly reports whether changes are refused.
func (f *FS) ReadOnly() bool { return f.edits == nil }

// View returns the current merged view. After a change through the mount
// it is rebuilt before anything is answered, so the change shows at once.
// A writable stack's view older than refresh is rebuilt in the background
// while the old one keeps serving: the host side (mappings) changes on its
// own time, and walking a big mapped folder must not stall every request.
func (f *FS) View() (*overlay.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.view != nil && !f.dirty {
		if f.edits != nil && !f.refreshing && time.Since(f.built) > refresh {
			f.refreshing = true
			go f.refresh(f.gen)
		}
		return f.view, nil
	}
	v, lower, err := f.merge(f.lower)
	if err != nil {
		return nil, fmt.Errorf("merging the layers: %w", err)
	}
	if f.lower != lower {
		f.built = time.Now()
	}
	f.view, f.lower, f.dirty = v, lower, false
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
		n := len(f.stack.Layers)
		st := &overlay.Stack{Layers: f.stack.Layers[:n-1], Epoch: f.stack.Epoch}
		if lower, err = st.View(); err != nil {
			return nil, nil, err
		}
	}
	v, err = lower.With(f.edits)
	return v, lower, err
}

// refresh rebuilds the view from the host in the background. A change
// through the mount meanwhile (a new generation) wins over the view, but
// the fresh lower view is kept for the next merge.
func (f *FS) refresh(gen uint64) {
	v, lower, err := f.merge(nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshing = false
	if err != nil {
		return
	}
	f.lower, f.built = lower, time.Now()
	if gen == f.gen && !f.dirty {
		f.view = v
		f.gen++
		return
	}
	// A change came in meanwhile: the next request puts the edits on the
	// fresh lower view, so host changes are not held back a whole refresh.
	f.dirty = true
}

// changed marks the view out of date after an edit.
func (f *FS) changed() {
	f.mu.Lock()
	f.dirty = true
	f.mu.Unlock()
}

// ino gives a node a stable inode number for the life of the mount: by
// path, or by hard-link group, so links share one inode as they will in
// the archive. A path whose type changed gets a new number, since the
// kernel must not see one inode change type.
func (f *FS) ino(n *overlay.Node) uint64 {
	return f.inoList([]*overlay.Node{n})[0]
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
		key := inoKey(n)
		r, ok := f.inos[key]
		if !ok || r.kind != n.Type {
			r = inoRec{ino: f.next, kind: n.Type}
			f.next++
			f.inos[key] = r
		}
		out[i] = r.ino
	}
	return out
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

// moved carries the inode numbers of oldp and everything below it to
// newp, so a renamed file keeps its identity.
func (f *FS) moved(oldp, newp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	for k, r := range f.inos {
		if rest, ok := below(k, oldp); ok {
			delete(f.inos, k)
			f.inos[newp+rest] = r
		}
	}
}

// removed forgets the inode numbers of p and everything below it.
func (f *FS) removed(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	for k := range f.inos {
		if _, ok := below(k, p); ok {
			delete(f.inos, k)
		}
	}
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
