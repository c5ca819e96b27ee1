package overlay

import (
	"sort"
	"strings"
)

// Diff compares two views path by path: what b adds, removes ("removed")
// or changes relative to a. A change names every aspect that differs
// (type, content hash, link target, device numbers, mode, owner) in one
// line, so two artifacts, or a recipe and its artifact, compare at a
// glance.
func Diff(a, b *View) ([]Change, error) {
	na, nb := byPath(a), byPath(b)
	var out []Change
	for p, x := range na {
		y, ok := nb[p]
		if !ok {
			out = append(out, Change{Path: p, Kind: "removed", Detail: x.Type.String()})
			continue
		}
		var what []string
		if x.Type != y.Type {
			what = append(what, x.Type.String()+" -> "+y.Type.String())
		} else {
			d, err := contentChange(&x.Entry, &y.Entry)
			if err != nil {
				return nil, err
			}
			if d != "" {
				what = append(what, d)
			}
		}
		if d := modeChange(&x.Entry, &y.Entry); d != "" {
			what = append(what, d)
		}
		if len(what) > 0 {
			out = append(out, Change{Path: p, Kind: "changed", Detail: strings.Join(what, ", ")})
		}
	}
	for p, y := range nb {
		if _, ok := na[p]; !ok {
			out = append(out, Change{Path: p, Kind: "added", Detail: y.Type.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func byPath(v *View) map[string]*Node {
	m := map[string]*Node{}
	_ = v.Walk(func(n *Node) error {
		m[n.Path] = n
		return nil
	})
	return m
}
