package edits

import (
	"sort"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// tree holds the entries of the edits layer by guest path, so a change
// finds what it touched (a subtree, the other names of a hard link) in
// what it touched, not in a scan of every edit.
type tree struct {
	root *treeNode
	// links maps a LinkID to the paths of its names.
	links map[string]map[string]bool
}

// treeNode is one guest path: the object there, the whiteout there (a
// crash between creating an object and removing the whiteout it replaces
// leaves both), and the paths below.
type treeNode struct {
	obj, wh       overlay.Entry
	hasObj, hasWh bool
	kids          map[string]*treeNode
}

func newTree() *tree {
	return &tree{root: &treeNode{}, links: map[string]map[string]bool{}}
}

// node returns the node at p, creating the way when make is set.
func (t *tree) node(p string, make bool) *treeNode {
	n := t.root
	for c := range overlay.EachComponent(p) {
		next := n.kids[c]
		if next == nil {
			if !make {
				return nil
			}
			if n.kids == nil {
				n.kids = map[string]*treeNode{}
			}
			next = &treeNode{}
			n.kids[c] = next
		}
		n = next
	}
	return n
}

// holds reports whether the tree has an object at p.
func (t *tree) holds(p string) bool {
	n := t.node(p, false)
	return n != nil && n.hasObj
}

func (t *tree) put(ent overlay.Entry) {
	n := t.node(ent.Path, true)
	if ent.Type == overlay.Whiteout {
		n.wh, n.hasWh = ent, true
		return
	}
	t.unlink(n)
	n.obj, n.hasObj = ent, true
	if ent.LinkID != "" {
		if t.links[ent.LinkID] == nil {
			t.links[ent.LinkID] = map[string]bool{}
		}
		t.links[ent.LinkID][ent.Path] = true
	}
}

// unlink takes n's object out of its hard-link group.
func (t *tree) unlink(n *treeNode) {
	if !n.hasObj || n.obj.LinkID == "" {
		return
	}
	g := t.links[n.obj.LinkID]
	delete(g, n.obj.Path)
	if len(g) == 0 {
		delete(t.links, n.obj.LinkID)
	}
}

// dropBelow forgets p and everything below it, calling fn with each
// object forgotten; keepWhiteout keeps a whiteout at p itself.
func (t *tree) dropBelow(p string, keepWhiteout bool, fn func(overlay.Entry)) {
	n := t.node(p, false)
	if n == nil {
		return
	}
	var drop func(n *treeNode)
	drop = func(n *treeNode) {
		if n.hasObj {
			fn(n.obj)
			t.unlink(n)
		}
		for _, k := range n.kids {
			drop(k)
		}
	}
	drop(n)
	switch {
	case keepWhiteout && n.hasWh:
		n.obj, n.hasObj, n.kids = overlay.Entry{}, false, nil
	case p == "/":
		t.root = &treeNode{}
	default:
		parts := overlay.Components(p)
		parent := t.node(strings.Join(parts[:len(parts)-1], "/"), false)
		delete(parent.kids, parts[len(parts)-1])
	}
}

// walk calls fn for p's node and every node below it.
func (t *tree) walk(p string, fn func(*treeNode)) {
	var walk func(n *treeNode)
	walk = func(n *treeNode) {
		fn(n)
		for _, k := range n.kids {
			walk(k)
		}
	}
	if n := t.node(p, false); n != nil {
		walk(n)
	}
}

// below returns the entries at and below p in the order a view applies
// them: by path, and of one path the whiteout first, so that of a
// leftover pair the object wins (and the lower object stays deleted).
func (t *tree) below(p string) []overlay.Entry {
	var out []overlay.Entry
	t.walk(p, func(n *treeNode) {
		if n.hasWh {
			out = append(out, n.wh)
		}
		if n.hasObj {
			out = append(out, n.obj)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Type == overlay.Whiteout && out[j].Type != overlay.Whiteout
	})
	return out
}

// at returns the entries at p alone, whiteout first.
func (t *tree) at(p string) []overlay.Entry {
	n := t.node(p, false)
	if n == nil {
		return nil
	}
	var out []overlay.Entry
	if n.hasWh {
		out = append(out, n.wh)
	}
	if n.hasObj {
		out = append(out, n.obj)
	}
	return out
}

// hides reports whether an entry at one of p's parents hides what the
// layers below have at p: a whiteout, an opaque directory, or an object
// that is no directory.
func (t *tree) hides(p string) bool {
	n := t.root
	for c := range overlay.EachComponent(p) {
		if n.hasWh || n.hasObj && (n.obj.Opaque || n.obj.Type != overlay.Dir) {
			return true
		}
		if n = n.kids[c]; n == nil {
			return false
		}
	}
	return false
}

// linked returns the paths of the hard-link group id.
func (t *tree) linked(id string) []string {
	out := make([]string, 0, len(t.links[id]))
	for p := range t.links[id] {
		out = append(out, p)
	}
	return out
}

// Delta implements Tracked.
func (e *Edits) Delta() ([]overlay.Delta, bool) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	d, ok := e.delta, !e.lost && e.tr != nil
	e.delta, e.lost = nil, false
	return d, ok
}

// At implements Tracked.
func (e *Edits) At(p string, deep bool) (ents []overlay.Entry, hidden, ok bool) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.tr == nil {
		return nil, false, false
	}
	if deep {
		ents = e.tr.below(p)
	} else {
		ents = e.tr.at(p)
	}
	return ents, e.tr.hides(p), true
}
