package overlay

import (
	"cmp"
	"fmt"
	"iter"
	"maps"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

// Layer is one source of entries. Layers are read when a view is built, so a
// layer backed by the host (mappings, edits) is as fresh as the view.
type Layer interface {
	// Name is the provenance recorded on every entry of the layer.
	Name() string
	// Entries returns the layer's entries in any order.
	Entries() ([]Entry, error)
}

// Live is a layer whose entries follow the host while a stack is in use.
type Live interface {
	Layer
	// Watch names what a watcher of the host must watch to see every change
	// of the entries: dirs are folders whose listing the entries reflect
	// (a file added, changed or removed directly in one changes the
	// layer), names are paths that matter by themselves, watched by name in
	// their parent folder (a mapped file, or a mapped folder being replaced).
	// A path that cannot be resolved right now is named as given, so its
	// creation is still seen.
	Watch() (dirs, names []string)
}

// Composite is a layer whose entries are worked out from what other layers
// hold (the host libraries layer reads the layers above it). A view reads
// each layer once while it is built: it hands the composite its reader,
// which gives a layer's entries as the view itself gets them.
type Composite interface {
	Layer
	// EntriesFrom is Entries, reading other layers through read.
	EntriesFrom(read func(Layer) ([]Entry, error)) ([]Entry, error)
}

// Filler is a Composite whose entries only fill paths that the image
// lacks, and that never shadows a path of the layers around it (the host
// libraries layer: what the programs of the image need and the image does
// not have). Its entries are worked out from the merged view of the layers
// below and above it; a stack builds that view once, hands it to the
// filler and puts the filler's entries beneath the layers above, instead
// of merging the layers above once for the filler and again for itself.
type Filler interface {
	Composite
	// EntriesOver is EntriesFrom for a filler that sits between the
	// layers below and above in a stack: over, called at most once,
	// merges those layers, below then above, into the view it returns,
	// which the filler must not keep. ok is false, over not called, when
	// the filler was made for other layers than those; the stack then
	// reads it with EntriesFrom and merges it in its place.
	EntriesOver(below, above []Layer, over func() (*View, error), read func(Layer) ([]Entry, error)) (ents []Entry, ok bool, err error)
}

// Tracked is a layer that knows what changed in it, so a view built with
// it on top can take the changes instead of merging every entry again
// (see View.Update).
type Tracked interface {
	Layer
	// Delta returns the changes since the last call. ok is false when the
	// layer cannot say (it read its entries afresh): anything may have
	// changed.
	Delta() (changes []Delta, ok bool)
	// At returns the layer's entries at p, and when deep is set also
	// below p, in the order a view applies them, and whether an entry at
	// one of p's parents hides what the layers beneath have at p. ok is
	// false when the layer does not know its entries right now.
	At(p string, deep bool) (ents []Entry, hidden, ok bool)
}

// Delta is a change of a layer at one path: of what the layer has at Path
// and below it when Tree is set, otherwise of the entry at Path alone (its
// metadata: a directory's times after a change inside it).
type Delta struct {
	Path string
	Tree bool
}

// Static is a layer whose entries are fixed in memory.
type Static struct {
	LayerName string
	List      []Entry
}

// Name implements Layer.
func (s *Static) Name() string { return s.LayerName }

// Entries implements Layer.
func (s *Static) Entries() ([]Entry, error) { return s.List, nil }

// DefaultEpoch is the modification time given to entries whose layer does
// not vouch for one, when SOURCE_DATE_EPOCH is not set.
var DefaultEpoch = time.Unix(0, 0).UTC()

// Stack is an ordered set of layers, bottom first.
type Stack struct {
	Layers []Layer
	// Epoch is the mtime of entries that carry none (see Entry.MTime).
	Epoch time.Time
}

// Node is an entry of the merged view.
type Node struct {
	Entry
	// Shadowed lists what lower layers had at this path, nearest first.
	Shadowed []Entry

	kids kids
	// above is set on a node that the layers above a Filler put where the
	// layers below it had nothing (see View.fill).
	above bool
}

// View is the merged result of a stack: what the image contains.
type View struct {
	root  *Node
	epoch time.Time
	// Removed records, per path, the whiteout that deleted it, so "why"
	// can explain a path that is gone. It may be shared with the view this
	// one was updated from (see Update); never change it.
	Removed map[string]Entry
	// removedShared is set while Removed is the base view's map.
	removedShared bool
	// moved is set when an entry of a layer put on with With or Update
	// landed at another path than its own (through a symlinked parent):
	// then a change at one path can change another, and Update merges
	// again instead.
	moved bool

	// owned, while With builds a view on top of another, holds the nodes
	// this view may change; all others are shared with the base view and
	// are copied before a change. nil means every node is this view's own.
	owned map[*Node]bool
	// dirs speeds up the walk to each entry's folder while a layer is
	// applied.
	dirs dirCache
	// While the layers above a Filler are merged (see Stack.View), above
	// is set, voids records the paths their whiteouts found empty, and
	// unresolved is set when a symlink did not lead anywhere: what the
	// filler's entries, had they been there, could have changed.
	above      bool
	voids      map[string]bool
	unresolved bool
}

const maxSymlinkHops = 40

// View merges the stack's layers bottom to top. A higher layer wins a path;
// directories merge, so a layer adds to the directories below it instead of
// replacing them; whiteouts and opaque directories delete what is below.
// Within a layer, entries are applied parents first, so a layer that
// replaces a directory with a file, or a symlink with a directory, does so
// before its own children land.
func (s *Stack) View() (*View, error) {
	r := newReads()
	i := slices.IndexFunc(s.Layers, func(l Layer) bool { _, ok := l.(Filler); return ok })
	if i < 0 {
		return s.merge(r, nil, -1)
	}
	v := s.newView()
	below, above := s.Layers[:i], s.Layers[i+1:]
	if err := v.applyLayers(below, r); err != nil {
		return nil, err
	}
	f := s.Layers[i].(Filler)
	ents, ok, err := f.EntriesOver(below, above, func() (*View, error) {
		v.above, v.voids = true, map[string]bool{}
		err := v.applyLayers(above, r)
		v.above = false
		return v, err
	}, r.read)
	switch {
	case err != nil:
		return nil, fmt.Errorf("layer %s: %w", f.Name(), err)
	case !ok:
		return s.merge(r, nil, -1)
	case v.fill(f.Name(), ents):
		return v, nil
	}
	// As the layers are read already, merging them again costs no walk.
	return s.merge(r, ents, i)
}

func (s *Stack) newView() *View {
	v := &View{
		root: &Node{
			Entry: Entry{Path: "/", Type: Dir, Perm: 0o755, Layer: "skeleton"},
			kids:  newKids(),
		},
		epoch:   s.Epoch,
		Removed: map[string]Entry{},
	}
	if v.epoch.IsZero() {
		v.epoch = DefaultEpoch
	}
	return v
}

// merge merges the stack's layers one after the other, the entries ents
// in place of layer at (none: -1).
func (s *Stack) merge(r reads, ents []Entry, at int) (*View, error) {
	v := s.newView()
	for i, l := range s.Layers {
		var err error
		if i == at {
			err = v.applyLayer(l.Name(), ents)
		} else {
			err = v.applyLayers([]Layer{l}, r)
		}
		if err != nil {
			return nil, err
		}
	}
	return v, nil
}

// fill applies the entries of the Filler layer name to v, which holds the
// layers below it and, marked, those above it: each entry goes where it
// would have gone had it been merged between them. It reports false,
// leaving v half changed, where it cannot vouch for that: an entry that is
// a folder, lands under a symlink, a folder that an opaque folder or
// another type ever held, or one the layers above made; a path a whiteout
// above cleared; a symlink above that led nowhere.
func (v *View) fill(name string, ents []Entry) bool {
	if len(ents) == 0 {
		return true
	}
	if v.unresolved {
		return false
	}
	v.dirs.reset()
	for e := range sortedByPath(ents) {
		if e.Layer == "" {
			e.Layer = name
		}
		if !v.fillable(e) {
			return false
		}
		if err := v.apply(e); err != nil {
			return false
		}
	}
	return true
}

// fillable reports whether e, put on v, lands where it would have landed
// beneath the layers above (see fill).
func (v *View) fillable(e Entry) bool {
	p := e.Path
	if !isClean(p) || p == "/" || e.Type == Dir || e.Type == Whiteout {
		return false
	}
	cur := v.root
	for end := 0; end < len(p); {
		if cur != nil && !plainDir(cur) {
			return false
		}
		next := strings.IndexByte(p[end+1:], '/')
		if next < 0 {
			next = len(p)
		} else {
			next += end + 1
		}
		sub := p[:next]
		if _, ok := v.Removed[sub]; ok || v.voids[sub] {
			return false
		}
		if cur != nil {
			cur, _ = cur.kids.get(p[end+1 : next])
			if cur != nil && cur.above {
				return false
			}
		}
		end = next
	}
	return cur == nil
}

// plainDir reports whether n is a folder that has always been one, never
// opaque.
func plainDir(n *Node) bool {
	if n.Type != Dir || n.Opaque {
		return false
	}
	for _, s := range n.Shadowed {
		if s.Type != Dir || s.Opaque {
			return false
		}
	}
	return true
}

// With returns v with more layers merged on top, leaving v as it was. The
// two views share every node the new layers do not touch, so putting a
// small layer (the mount's edits) on a large merged base costs what the
// small layer changes, not a merge of everything below it again.
func (v *View) With(layers ...Layer) (*View, error) {
	nv := v.derive()
	if err := nv.applyLayers(layers, newReads()); err != nil {
		return nil, err
	}
	nv.owned = nil
	return nv, nil
}

// derive starts a view that shares everything with v until changed.
func (v *View) derive() *View {
	return &View{root: v.root, epoch: v.epoch, Removed: v.Removed, removedShared: true, moved: v.moved, owned: map[*Node]bool{}}
}

// Update returns v with the changes of its top layer l applied, leaving v
// as it was: v must have been built as lower.With(l), or updated from such
// a view. Each changed path is merged again from what lower has there and
// what l has there now; nothing else is looked at, and only the nodes on
// the way to a change are copied. It falls back to lower.With(l) where a
// path cannot be updated on its own: the root changed, l does not know its
// changes, or a symlinked parent makes one path's entries land at another.
// It returns the changes it applied, sorted by path, or nil when it merged
// l again whole.
func (v *View) Update(lower *View, l Tracked) (*View, []Delta, error) {
	changes, ok := l.Delta()
	if ok && !v.moved {
		changes = coalesce(changes)
		if nv, err := v.update(lower, l, changes); nv != nil || err != nil {
			return nv, changes, err
		}
	}
	nv, err := lower.With(l)
	return nv, nil, err
}

// update applies changes to a copy of v, or returns nil if one cannot be
// applied on its own.
func (v *View) update(lower *View, l Tracked, changes []Delta) (*View, error) {
	if len(changes) == 0 {
		return v, nil
	}
	nv := v.derive()
	for i := range changes {
		c := &changes[i]
		done, err := nv.updatePath(lower, l, c)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %s: %w", l.Name(), c.Path, err)
		}
		if !done || nv.moved {
			return nil, nil
		}
	}
	nv.owned = nil
	return nv, nil
}

// coalesce sorts changes by path, parents first, and leaves out those a
// change of a whole tree above (or at) them covers.
func coalesce(changes []Delta) []Delta {
	trees := map[string]bool{}
	for _, c := range changes {
		if c.Tree {
			trees[c.Path] = true
		}
	}
	seen := map[string]bool{}
	var out []Delta
	for _, c := range changes {
		covered := seen[c.Path]
		for a := c.Path; !covered && a != "/"; {
			a = path.Dir(a)
			covered = trees[a]
		}
		if c.Tree != trees[c.Path] || covered {
			continue
		}
		seen[c.Path] = true
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// updatePath merges path c.Path again; done is false when it cannot be
// done on its own (see Update). A change of an entry alone that turns out
// to need more becomes a change of the tree.
func (v *View) updatePath(lower *View, l Tracked, c *Delta) (done bool, err error) {
	if c.Path == "/" {
		if c.Tree {
			return false, nil
		}
		ents, _, ok := l.At("/", false)
		return ok && v.updateNode(v.root, lower.root, ents), nil
	}
	parent := v.node(path.Dir(c.Path))
	if parent == nil || parent.Type != Dir {
		return false, nil
	}
	name := path.Base(c.Path)
	cur, _ := parent.kids.get(name)
	if !c.Tree && (cur == nil || cur.Type != Dir) {
		c.Tree = true
	}
	ents, hidden, ok := l.At(c.Path, c.Tree)
	if !ok {
		return false, nil
	}
	var below *Node
	if !hidden {
		// The view has a folder at every parent: where the layers beneath
		// have no folder (a symlink, say), the edits replaced what they
		// have, and nothing of theirs shows below.
		below = lower.node(c.Path)
	}
	if !c.Tree {
		return v.updateNode(cur, below, ents), nil
	}
	parent = v.own(parent)
	parent.kids.set(name, nil)
	// Whiteouts at and below the path are merged again below, so recorded
	// again if they still stand. Below it, only a folder can have had any.
	v.unremove(c.Path, l.Name(), cur != nil && cur.Type == Dir)
	if below != nil {
		// Shared with lower: own copies it before any change.
		parent.kids.set(name, below)
	}
	for _, e := range ents {
		if e.Layer == "" {
			e.Layer = l.Name()
		}
		if err := v.apply(e); err != nil {
			return false, err
		}
	}
	return true, nil
}

// updateNode gives the directory node cur the layer's entry ents (its
// metadata) over below, what the layers beneath have there, keeping its
// children. A directory that turned opaque, or lost its entry, is merged
// again whole instead.
func (v *View) updateNode(cur, below *Node, ents []Entry) bool {
	if len(ents) != 1 || ents[0].Type != Dir || ents[0].Opaque != cur.Opaque {
		return false
	}
	n := v.own(cur)
	n.Entry = ents[0]
	if n.Entry.Layer == "" {
		n.Entry.Layer = cur.Layer
	}
	n.Shadowed = nil
	if below != nil {
		n.Shadowed = append([]Entry{below.Entry}, below.Shadowed...)
	}
	return true
}

// reads keeps the entries of the layers read while one view is built, so
// that a Composite and the view read each layer once: a walk of a large
// mapped tree costs a stat per file, and a second walk as much again.
type reads map[Layer][]Entry

func newReads() reads { return reads{} }

// read returns l's entries, reading l the first time. A layer whose type
// cannot key a map is read each time it is asked for.
func (r reads) read(l Layer) ([]Entry, error) {
	keep := reflect.TypeOf(l).Comparable()
	if keep {
		if ents, ok := r[l]; ok {
			return ents, nil
		}
	}
	var ents []Entry
	var err error
	if c, ok := l.(Composite); ok {
		ents, err = c.EntriesFrom(r.read)
	} else {
		ents, err = l.Entries()
	}
	if err == nil && keep {
		r[l] = ents
	}
	return ents, err
}

func (v *View) applyLayers(layers []Layer, r reads) error {
	for _, l := range layers {
		ents, err := r.read(l)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Name(), err)
		}
		if err := v.applyLayer(l.Name(), ents); err != nil {
			return err
		}
	}
	return nil
}

// applyLayer applies the entries of the layer name sorted by path (a
// stable sort: of two entries at one path the later wins), parents first.
func (v *View) applyLayer(name string, ents []Entry) error {
	v.dirs.reset()
	for e := range sortedByPath(ents) {
		if e.Layer == "" {
			e.Layer = name
		}
		if err := v.apply(e); err != nil {
			return fmt.Errorf("layer %s: %s: %w", name, e.Path, err)
		}
	}
	return nil
}

// sortedByPath yields ents sorted by path, of two at one path the earlier
// first. Entries already sorted (as a layer usually gives them) are not
// looked at again; others are sorted by index, not moved.
func sortedByPath(ents []Entry) iter.Seq[Entry] {
	if slices.IsSortedFunc(ents, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) }) {
		return slices.Values(ents)
	}
	order := make([]int, len(ents))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		if c := strings.Compare(ents[i].Path, ents[j].Path); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	})
	return func(yield func(Entry) bool) {
		for _, i := range order {
			if !yield(ents[i]) {
				return
			}
		}
	}
}

// own returns a node of this view at n's place that may be changed: n
// itself when the view owns it, otherwise a copy linked in its place, with
// its ancestors copied likewise (path copying). Node paths are real
// locations, never symlinked ones, so the walk from the root finds them.
func (v *View) own(n *Node) *Node {
	if v.owned == nil || v.owned[n] {
		return n
	}
	cur := v.root
	if !v.owned[cur] {
		cur = v.copyNode(cur)
		v.root = cur
	}
	for name := range EachComponent(n.Path) {
		next, _ := cur.kids.get(name)
		if !v.owned[next] {
			next = v.copyNode(next)
			cur.kids.set(name, next)
		}
		cur = next
	}
	return cur
}

func (v *View) copyNode(n *Node) *Node {
	c := *n
	c.kids = n.kids.clone()
	v.owned[&c] = true
	return &c
}

// adopt returns kids for a new node that takes over old's children: the
// same map when this view owns it, a copy when the base view shares it.
func (v *View) adopt(old *Node) kids {
	if v.owned == nil || v.owned[old] {
		return old.kids
	}
	return old.kids.clone()
}

// link puts n into dir (owned) and marks it this view's own.
func (v *View) link(dir *Node, name string, n *Node) {
	dir.kids.set(name, n)
	if v.owned != nil {
		v.owned[n] = true
	}
}

func (v *View) apply(e Entry) error {
	p := e.Path
	if !isClean(p) {
		var err error
		if p, err = CleanPath(p); err != nil {
			return err
		}
	}
	if p == "/" {
		v.dirs.reset()
		return v.applyRoot(e)
	}
	i := strings.LastIndexByte(p, '/')
	parent, name := p[:max(i, 1)], p[i+1:]
	dir, err := v.parentDir(parent, e)
	if err != nil {
		return err
	}
	dir = v.own(dir)
	e.Path = p
	if dir.Path != parent {
		e.Path = path.Join(dir.Path, name)
		if v.owned != nil {
			v.moved = true
		}
	}
	old, _ := dir.kids.get(name)
	switch {
	case e.Type == Whiteout:
		if old != nil {
			dir.kids.set(name, nil)
			v.removed(e)
		} else if v.voids != nil && v.above {
			v.voids[e.Path] = true
		}
		return nil
	case e.Implicit && old != nil && (old.Type == Dir || v.isDirLink(old)):
		return nil
	}
	n := &Node{Entry: e, above: v.above}
	if old != nil {
		n.Shadowed, n.above = append([]Entry{old.Entry}, old.Shadowed...), old.above
	}
	if e.Type == Dir {
		n.kids = newKids()
		if old != nil && old.Type == Dir && !e.Opaque {
			n.kids = v.adopt(old)
		}
	}
	v.link(dir, name, n)
	return nil
}

// isClean reports whether p is already as CleanPath returns it: absolute,
// no empty, "." or ".." component, no trailing slash, no NUL byte. Nearly
// every path a layer gives is, and then need not be cleaned again.
func isClean(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if p[i] == 0 {
				return false
			}
			continue
		}
		if c := p[start:i]; c == "" || c == "." || c == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// removed records the whiteout e in Removed, copying the map first if it
// is shared.
func (v *View) removed(e Entry) {
	if v.removedShared {
		v.Removed, v.removedShared = maps.Clone(v.Removed), false
	}
	v.Removed[e.Path] = e
}

// unremove forgets the whiteouts of layer that Removed records at p, and
// when deep is set below p.
func (v *View) unremove(p, layer string, deep bool) {
	forget := func(k string) {
		if v.removedShared {
			v.Removed, v.removedShared = maps.Clone(v.Removed), false
		}
		delete(v.Removed, k)
	}
	if !deep {
		// Nearly every change: one look, not a pass over every whiteout.
		if e, ok := v.Removed[p]; ok && e.Layer == layer {
			forget(p)
		}
		return
	}
	for k, e := range v.Removed {
		if e.Layer == layer && (k == p || strings.HasPrefix(k, p+"/")) {
			forget(k)
		}
	}
}

func (v *View) applyRoot(e Entry) error {
	switch {
	case e.Type == Whiteout:
		return fmt.Errorf("the root cannot be deleted")
	case e.Type != Dir:
		return fmt.Errorf("the root must be a directory, not a %s", e.Type)
	case e.Implicit:
		return nil
	}
	e.Path = "/"
	n := &Node{Entry: e, Shadowed: append([]Entry{v.root.Entry}, v.root.Shadowed...), kids: v.adopt(v.root)}
	if e.Opaque {
		n.kids = newKids()
	}
	v.root = n
	if v.owned != nil {
		v.owned[n] = true
	}
	return nil
}

// dirCache holds the folders on the way to the last parent folder a layer's
// entry went into: the entries come sorted, so the next one is nearly
// always in the same folder or one near it, and its walk starts there
// instead of at the root. It holds only real folders reached without a
// symlink, on the way to the parent folder of the entry being applied:
// the entry changes what is below that folder, never the folders above.
type dirCache struct {
	path  string  // the last parent folder
	ends  []int   // ends[i] is the length of path up to nodes[i]'s name
	nodes []*Node // nodes[0] is the root, nodes[i] its folder path[:ends[i]]
}

func (c *dirCache) reset() {
	c.path, c.ends, c.nodes = "", c.ends[:0], c.nodes[:0]
}

// parentDir is dirFor(dir, e), starting from the deepest folder of the
// cache that is dir or above it. A view built on top of another (With)
// copies the nodes it changes, so it walks from the root.
func (v *View) parentDir(dir string, e Entry) (*Node, error) {
	c := &v.dirs
	if v.owned != nil {
		return v.dirFor(dir, e)
	}
	if len(c.nodes) == 0 || c.nodes[0] != v.root {
		c.path, c.ends, c.nodes = "", append(c.ends[:0], 0), append(c.nodes[:0], v.root)
	}
	k := len(c.nodes) - 1
	for k > 0 && !(len(dir) >= c.ends[k] && dir[:c.ends[k]] == c.path[:c.ends[k]] && (len(dir) == c.ends[k] || dir[c.ends[k]] == '/')) {
		k--
	}
	c.path, c.ends, c.nodes = dir, c.ends[:k+1], c.nodes[:k+1]
	cur := c.nodes[k]
	for start := c.ends[k] + 1; start < len(dir); {
		end := strings.IndexByte(dir[start:], '/')
		if end < 0 {
			end = len(dir)
		} else {
			end += start
		}
		name := dir[start:end]
		next, _ := cur.kids.get(name)
		if next != nil && next.Type == Symlink {
			// Nothing was created on the way here: a folder made
			// below holds no symlink yet.
			c.reset()
			return v.dirFor(dir, e)
		}
		if next == nil || next.Type != Dir {
			next = v.implicitDir(cur, name, e)
		}
		cur = next
		c.ends, c.nodes = append(c.ends, end), append(c.nodes, cur)
		start = end + 1
	}
	return cur, nil
}

// dirFor returns the directory node that entries below dir land in,
// creating implicit directories where nothing exists yet. A symlink to a
// directory is followed, as the kernel does when it unpacks the archive, so
// a layer adding /bin/tool on top of a merged-/usr rootfs (bin -> usr/bin)
// shows the file where it will really be. Anything else in the way is
// replaced by a directory, since the higher layer wins.
func (v *View) dirFor(dir string, e Entry) (*Node, error) {
	cur := v.root
	hops := 0
	parts := Components(dir)
	for i := 0; i < len(parts); i++ {
		name := parts[i]
		next, _ := cur.kids.get(name)
		if next != nil && next.Type == Symlink {
			target, ok := v.resolve(next, &hops)
			if ok && target.Type == Dir {
				next = target
			} else if hops > maxSymlinkHops {
				return nil, fmt.Errorf("too many levels of symbolic links below %s", dir)
			} else {
				next = nil
			}
		}
		if next == nil || next.Type != Dir {
			next = v.implicitDir(cur, name, e)
		}
		cur = next
	}
	return cur, nil
}

func (v *View) implicitDir(parent *Node, name string, e Entry) *Node {
	parent = v.own(parent)
	n := &Node{
		Entry: Entry{Path: path.Join(parent.Path, name), Type: Dir, Perm: 0o755, Implicit: true, Layer: e.Layer, Source: e.Source},
		kids:  newKids(),
		above: v.above,
	}
	if old, _ := parent.kids.get(name); old != nil {
		n.Shadowed, n.above = append([]Entry{old.Entry}, old.Shadowed...), old.above
	}
	v.link(parent, name, n)
	return n
}

func (v *View) isDirLink(n *Node) bool {
	hops := 0
	t, ok := v.resolve(n, &hops)
	return ok && t.Type == Dir
}

// resolve follows a symlink inside the view. Absolute targets are taken
// relative to the image root, never the host's.
func (v *View) resolve(link *Node, hops *int) (*Node, bool) {
	n := link
	for n.Type == Symlink {
		*hops++
		if *hops > maxSymlinkHops {
			v.unresolved = v.unresolved || v.above
			return nil, false
		}
		target := n.Linkname
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(n.Path), target)
		}
		next, ok := v.lookup(path.Clean("/"+target), hops)
		if !ok {
			v.unresolved = v.unresolved || v.above
			return nil, false
		}
		n = next
	}
	return n, true
}

// lookup walks p component by component, following symlinks on the way.
func (v *View) lookup(p string, hops *int) (*Node, bool) {
	cur := v.root
	for name := range EachComponent(p) {
		if cur.Type == Symlink {
			t, ok := v.resolve(cur, hops)
			if !ok {
				return nil, false
			}
			cur = t
		}
		if cur.Type != Dir {
			return nil, false
		}
		next, ok := cur.kids.get(name)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// Components returns the names along guest path p, from the root down.
func Components(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// EachComponent is Components without building the slice: walking a path
// is what nearly every request does.
func EachComponent(p string) iter.Seq[string] {
	p = strings.Trim(p, "/")
	if p == "" {
		return func(func(string) bool) {}
	}
	return strings.SplitSeq(p, "/")
}

// node returns the node at p, following no symlink on the way.
func (v *View) node(p string) *Node {
	n := v.root
	for c := range EachComponent(p) {
		if n.Type != Dir {
			return nil
		}
		if n, _ = n.kids.get(c); n == nil {
			return nil
		}
	}
	return n
}

// Landing returns where an entry at p lands when it is merged into v: the
// folders on the way are followed through symlinks that lead to folders
// inside the view, as merging does (and the kernel when it unpacks the
// archive); from the first one missing, or neither a folder nor a link to
// one, the rest of p is taken as it is.
func (v *View) Landing(p string) string {
	dir, name := path.Split(path.Clean("/" + p))
	cur, hops := v.root, 0
	parts := Components(dir)
	for i, c := range parts {
		next, _ := cur.kids.get(c)
		if next != nil && next.Type == Symlink {
			if t, ok := v.resolve(next, &hops); ok && t.Type == Dir {
				next = t
			}
		}
		if next == nil || next.Type != Dir {
			return path.Join(append(append([]string{cur.Path}, parts[i:]...), name)...)
		}
		cur = next
	}
	return path.Join(cur.Path, name)
}

// Get returns the node at p without following a symlink in its last
// component (lstat semantics); symlinks in the parent path are followed.
func (v *View) Get(p string) (*Node, bool) {
	p = path.Clean("/" + p)
	if p == "/" {
		return v.root, true
	}
	hops := 0
	dir, ok := v.lookup(path.Dir(p), &hops)
	if ok && dir.Type == Symlink {
		dir, ok = v.resolve(dir, &hops)
	}
	if !ok || dir.Type != Dir {
		return nil, false
	}
	n, ok := dir.kids.get(path.Base(p))
	return n, ok
}

// Resolve follows p through symlinks, including one in its last component
// (stat semantics).
func (v *View) Resolve(p string) (*Node, bool) {
	n, ok := v.Get(p)
	if !ok {
		return nil, false
	}
	hops := 0
	return v.resolve(n, &hops)
}

// Children returns the entries directly below a directory node, by name.
func (v *View) Children(n *Node) []*Node {
	out := make([]*Node, 0, n.kids.n)
	n.kids.each(func(_ string, k *Node) { out = append(out, k) })
	slices.SortFunc(out, func(a, b *Node) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Root returns the root directory.
func (v *View) Root() *Node { return v.root }

// Walk visits every node depth first, parents before children and siblings
// by name: the order the packer writes, so archives are deterministic.
func (v *View) Walk(fn func(*Node) error) error {
	return v.walk(v.root, fn)
}

func (v *View) walk(n *Node, fn func(*Node) error) error {
	if err := fn(n); err != nil {
		return err
	}
	if n.Type != Dir {
		return nil
	}
	for _, k := range v.Children(n) {
		if err := v.walk(k, fn); err != nil {
			return err
		}
	}
	return nil
}

// MTime is the modification time a node is packed and shown with.
func (v *View) MTime(n *Node) time.Time {
	if n.MTime.IsZero() {
		return v.epoch
	}
	return n.MTime
}

// Epoch is the time used for entries that carry none.
func (v *View) Epoch() time.Time { return v.epoch }
