package overlay

import (
	"fmt"
	"maps"
	"math/rand"
	"testing"
)

// Children changed through chains of copies, against plain maps: every
// copy shows its own changes and the ones before it, and no later change
// of a copy shows in an earlier one, across the folds.
func TestKidsCopiesStayApart(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	nodes := map[string]*Node{}
	node := func(name string) *Node {
		if nodes[name] == nil {
			typ := Regular
			if r.Intn(3) == 0 {
				typ = Dir
			}
			nodes[name] = &Node{Entry: Entry{Path: "/" + name, Type: typ}}
		}
		return nodes[name]
	}
	type version struct {
		k    kids
		want map[string]*Node
	}
	cur := version{newKids(), map[string]*Node{}}
	for range 500 {
		name := fmt.Sprint(r.Intn(700))
		cur.k.set(name, node(name))
		cur.want[name] = node(name)
	}
	var old []version
	for step := range 300 {
		old = append(old, version{cur.k, maps.Clone(cur.want)})
		cur = version{cur.k.clone(), maps.Clone(cur.want)}
		for range r.Intn(40) {
			name := fmt.Sprint(r.Intn(700))
			if r.Intn(2) == 0 {
				cur.k.set(name, nil)
				delete(cur.want, name)
			} else {
				nodes[name] = nil
				cur.k.set(name, node(name))
				cur.want[name] = node(name)
			}
		}
		for i, v := range append(old, cur) {
			check(t, fmt.Sprintf("step %d, version %d", step, i), v.k, v.want)
		}
		if len(old) > 20 {
			old = old[1:]
		}
	}
}

func check(t *testing.T, what string, k kids, want map[string]*Node) {
	t.Helper()
	got := map[string]*Node{}
	k.each(func(name string, n *Node) { got[name] = n })
	if !maps.Equal(got, want) {
		t.Fatalf("%s: %d names, want %d", what, len(got), len(want))
	}
	dirs := 0
	for name, n := range want {
		if g, ok := k.get(name); !ok || g != n {
			t.Fatalf("%s: get %s = %v, %v", what, name, g, ok)
		}
		if n.Type == Dir {
			dirs++
		}
	}
	if _, ok := k.get("absent"); ok {
		t.Fatalf("%s: absent name found", what)
	}
	if k.n != len(want) || k.dirs != dirs {
		t.Fatalf("%s: counted %d names, %d dirs, want %d, %d", what, k.n, k.dirs, len(want), dirs)
	}
}
