package fusefs

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/volantvm/fledge/overlay"
)

// invalidator tells the kernel which entries a new view changed, so it may
// cache what the mount replied for long instead of asking again and again.
// It works on its own goroutine: the kernel answers an invalidation only
// after the operations running in that directory have finished, and one of
// them may be the request whose change made the new view.
type invalidator struct {
	root *fs.Inode
	// mnt is the absolute mountpoint (see listing).
	mnt string

	mu    sync.Mutex
	queue []step
	wake  chan struct{}
	done  chan struct{}
}

// newInvalidator queues changes from now on; run sends them, once the
// mount is up.
func newInvalidator(root *fs.Inode, mnt string) *invalidator {
	return &invalidator{root: root, mnt: mnt, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// step is one change of view. host is set when the host changed: a change
// made through the mount changed the listings it touched in the kernel
// already. changes, when set, are what the edits reported (see
// overlay.View.Update), and only those paths are compared; otherwise the
// views are. replied names the paths whose attributes alone changed and
// whose replies told the kernel so, and the files made whose replies
// described them (see FS.changedReplied).
type step struct {
	from, to *overlay.View
	host     bool
	changes  []overlay.Delta
	replied  map[string]bool
}

// push queues a change of view. Every step is sent, in order: an entry
// that changed and changed back may have been cached in between.
func (q *invalidator) push(s step) {
	if q == nil || s.from == nil || s.from == s.to {
		return
	}
	q.mu.Lock()
	q.queue = append(q.queue, s)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine; queued changes are dropped (the mount is gone).
func (q *invalidator) stop() { close(q.done) }

func (q *invalidator) run() {
	for {
		select {
		case <-q.done:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		steps := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, s := range steps {
			q.send(s)
		}
	}
}

func (q *invalidator) send(s step) {
	if s.changes != nil {
		// The kernel made these changes itself: it knows every name they
		// added, removed or moved, and only attributes may be new to it.
		// Dropping such a name would unhash a folder a process may have
		// entered already (mkdir d && cd d), whose getcwd then fails.
		for _, c := range s.changes {
			switch {
			case s.replied[c.Path] && (sameObject(s.from, s.to, c) || madeFile(s.from, s.to, c)):
			case c.Tree:
				changedBelow(s.from, s.to, c.Path, q.attrs)
			default:
				changedAttrs(s.from, s.to, c.Path, q.attrs)
			}
		}
		return
	}
	dirs := map[string]bool{}
	changedPaths(s.from, s.to, func(p string) {
		q.entry(p)
		dirs[path.Dir(p)] = true
	})
	if !s.host {
		return
	}
	for d := range dirs {
		q.listing(d)
	}
}

// attrs drops the attributes the kernel holds for guest path p (a folder
// whose times a change inside it moved), keeping its name and children.
func (q *invalidator) attrs(p string) {
	if in := q.inode(p); in != nil {
		in.NotifyContent(0, 0)
	}
}

// entry drops what the kernel holds for guest path p: its attributes and
// cached data, and the name itself, so the next access looks it up again.
// A path whose parent the kernel never looked up is not cached at all.
//
// Both are safe against a reply built from the old view that is still on
// its way: the kernel discards attributes from a request older than the
// invalidation, and it waits for lookups in the folder to finish before it
// drops a name.
func (q *invalidator) entry(p string) {
	if p == "/" {
		q.root.NotifyContent(0, 0)
		return
	}
	parent := q.inode(path.Dir(p))
	if parent == nil {
		return
	}
	name := path.Base(p)
	if kid := parent.GetChild(name); kid != nil {
		kid.NotifyContent(0, 0)
	}
	parent.NotifyEntry(name)
}

// probe is the name listing looks up; it need not be absent, only short.
const probe = ".fledge-listing-changed"

// listing tells the kernel that the listing of folder p changed. The kernel
// keeps listings (FOPEN_CACHE_DIR, see OpendirHandle) and, when one is read
// from the start, compares the folder's change counter with the one it
// noted before it asked for the listing. Dropping a name the kernel holds
// in the folder moves that counter; so the mount looks a name up in the
// folder through its own mountpoint, which leaves such a name, and drops
// it. Invalidating the cached pages would not do: a listing built from the
// old view can still be on its way, and be stored after the invalidation.
// Counted, it is thrown away at its first read, since it was asked for
// before the change.
func (q *invalidator) listing(p string) {
	dir := q.inode(p)
	if dir == nil {
		return
	}
	// Absent is the expected answer: the lookup is all that is wanted.
	_, _ = os.Lstat(filepath.Join(q.mnt, p, probe))
	dir.NotifyEntry(probe)
}

// all drops everything the kernel holds (see entry), for when changes can
// no longer be told one by one. Listings need no counting here: a mount
// that stops watching no longer lets the kernel keep them, and a folder
// opened without that leave drops its cached listing.
func (q *invalidator) all() {
	var walk func(in *fs.Inode)
	walk = func(in *fs.Inode) {
		in.NotifyContent(0, 0)
		for name, kid := range in.Children() {
			walk(kid)
			in.NotifyEntry(name)
		}
	}
	walk(q.root)
}

// inode returns the inode the kernel knows at guest path p, or nil.
func (q *invalidator) inode(p string) *fs.Inode {
	in := q.root
	for c := range strings.SplitSeq(strings.Trim(p, "/"), "/") {
		if c == "" {
			continue
		}
		if in = in.GetChild(c); in == nil {
			return nil
		}
	}
	return in
}

// changedPaths calls fn for every path that b adds, removes or shows
// differently from a. Subtrees the two views share (a change through the
// mount copies only the paths it touches) are skipped without a look. A
// path that changed type is reported once; what was below it goes with it.
func changedPaths(a, b *overlay.View, fn func(p string)) {
	walkChanged(a, b, a.Root(), b.Root(), fn)
}

// changedBelow is changedPaths for path p and what is below it.
func changedBelow(a, b *overlay.View, p string, fn func(p string)) {
	x, okx := a.Get(p)
	y, oky := b.Get(p)
	switch {
	case okx && oky:
		walkChanged(a, b, x, y, fn)
	case okx || oky:
		fn(p)
	}
}

// sameObject reports whether change c left the object at its path in
// place, with only its attributes changed: the same type and inode, and for
// a change of a folder's tree, no folder there.
func sameObject(a, b *overlay.View, c overlay.Delta) bool {
	x, okx := a.Get(c.Path)
	y, oky := b.Get(c.Path)
	return okx && oky && x.Type == y.Type && inoKey(x) == inoKey(y) && !(c.Tree && x.Type == overlay.Dir)
}

// madeFile reports whether change c made a file where there was nothing:
// what a CREATE did, whose reply told the kernel all there is to it.
func madeFile(a, b *overlay.View, c overlay.Delta) bool {
	_, okx := a.Get(c.Path)
	y, oky := b.Get(c.Path)
	return !okx && oky && y.Type == overlay.Regular
}

// changedAttrs calls fn with p if the two views show its node differently.
func changedAttrs(a, b *overlay.View, p string, fn func(p string)) {
	x, okx := a.Get(p)
	y, oky := b.Get(p)
	if okx && oky && shownAs(a, x) != shownAs(b, y) {
		fn(p)
	}
}

func walkChanged(a, b *overlay.View, x, y *overlay.Node, fn func(p string)) {
	var walk func(x, y *overlay.Node)
	walk = func(x, y *overlay.Node) {
		if x == y {
			return
		}
		if shownAs(a, x) != shownAs(b, y) {
			fn(y.Path)
		}
		if x.Type != overlay.Dir || y.Type != overlay.Dir {
			return
		}
		xs, ys := a.Children(x), b.Children(y)
		for len(xs) > 0 || len(ys) > 0 {
			switch {
			case len(ys) == 0 || len(xs) > 0 && xs[0].Path < ys[0].Path:
				fn(xs[0].Path)
				xs = xs[1:]
			case len(xs) == 0 || ys[0].Path < xs[0].Path:
				fn(ys[0].Path)
				ys = ys[1:]
			default:
				walk(xs[0], ys[0])
				xs, ys = xs[1:], ys[1:]
			}
		}
	}
	walk(x, y)
}

// shown is what the kernel may cache of an entry: its attributes and its
// inode identity. Contents are not cached across opens.
type shown struct {
	typ          overlay.Type
	mode         uint32
	uid, gid     int
	size         int64
	link         string
	major, minor uint32
	mtime        int64
	ino          string
}

func shownAs(v *overlay.View, n *overlay.Node) shown {
	return shown{
		typ: n.Type, mode: n.UnixMode(), uid: n.UID, gid: n.GID,
		size: contentSize(n), link: n.Linkname, major: n.Major, minor: n.Minor,
		mtime: v.MTime(n).UnixNano(), ino: inoKey(n),
	}
}
