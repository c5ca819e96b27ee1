package overlay

import "maps"

// kids holds the entries directly below a directory node, by name.
//
// A view updated from another copies the nodes on the way to a change and
// shares everything else (see View.own). Copying a node's children whole
// would make every change in a folder cost the folder's size, and a tar x
// of thousands of files into one folder quadratic. So a copy shares base,
// which no one changes once it is shared, and keeps its own changes in
// over (a nil node there is a removed name); over is folded into a base of
// the node's own when it outgrows foldAt, which keeps both the copies and
// the folds at about the square root of the folder's size per change.
type kids struct {
	base map[string]*Node
	over map[string]*Node
	// own is set while base belongs to this node alone, to change in place.
	own bool
	// n counts the names, dirs those of directories (see Subdirs).
	n, dirs int
}

func newKids() kids { return kids{base: map[string]*Node{}, own: true} }

// clone returns children to change without changing k's.
func (k *kids) clone() kids {
	c := *k
	c.over = maps.Clone(k.over)
	c.own = false
	return c
}

func (k *kids) get(name string) (*Node, bool) {
	if n, ok := k.over[name]; ok {
		return n, n != nil
	}
	n, ok := k.base[name]
	return n, ok
}

// set puts n at name; a nil n removes the name.
func (k *kids) set(name string, n *Node) {
	if old, ok := k.get(name); ok {
		k.count(old, -1)
	}
	if n != nil {
		k.count(n, 1)
	}
	if k.own {
		if n == nil {
			delete(k.base, name)
		} else {
			k.base[name] = n
		}
		return
	}
	if _, inBase := k.base[name]; n == nil && !inBase {
		delete(k.over, name)
	} else {
		if k.over == nil {
			k.over = map[string]*Node{}
		}
		k.over[name] = n
	}
	if len(k.over) > k.foldAt() {
		k.fold()
	}
}

func (k *kids) count(n *Node, d int) {
	k.n += d
	if n.Type == Dir {
		k.dirs += d
	}
}

// foldAt is the size over may reach: about the square root of the
// folder's size, so a copy and the fold it delays cost alike.
func (k *kids) foldAt() int {
	s := 8
	for s*s < len(k.base) {
		s *= 2
	}
	return s
}

// fold gives k a base of its own with over's changes in it.
func (k *kids) fold() {
	b := make(map[string]*Node, k.n)
	k.each(func(name string, n *Node) { b[name] = n })
	k.base, k.over, k.own = b, nil, true
}

// each calls fn for every name, in no order.
func (k *kids) each(fn func(name string, n *Node)) {
	for name, n := range k.base {
		if _, ok := k.over[name]; !ok {
			fn(name, n)
		}
	}
	for name, n := range k.over {
		if n != nil {
			fn(name, n)
		}
	}
}
