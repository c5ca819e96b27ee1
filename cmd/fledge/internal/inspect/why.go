package inspect

import (
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// Provider is one layer's entry at a path, as "why" reports it.
type Provider struct {
	Layer  string `json:"layer"`
	Source string `json:"source,omitempty"`
	Type   string `json:"type"`
	Mode   string `json:"mode"`
	Link   string `json:"link_target,omitempty"`
	Path   string `json:"path,omitempty"`
	// NeededBy names the programs a library was added for, or the
	// modules a kernel module was added for.
	NeededBy []string `json:"needed_by,omitempty"`
}

func providerOf(e *overlay.Entry) Provider {
	return Provider{Layer: e.Layer, Source: e.Source, Type: e.Type.String(), Mode: ModeString(e), Link: e.Linkname, Path: e.Path, NeededBy: e.NeededBy}
}

// Hop is a symlinked directory on the way to a path.
type Hop struct {
	Link   string `json:"link"`
	Target string `json:"target"`
	Layer  string `json:"layer"`
}

// Explanation says where a path of the image comes from.
type Explanation struct {
	Path string `json:"path"`
	// Resolved is the path the entry really has when a parent directory
	// is a symlink ("/bin/sh" in a merged-/usr image is "/usr/bin/sh").
	Resolved string     `json:"resolved,omitempty"`
	Via      []Hop      `json:"via,omitempty"`
	Found    bool       `json:"found"`
	Provider *Provider  `json:"provider,omitempty"`
	Shadows  []Provider `json:"shadows,omitempty"`
	// Target is what a symlink at the path finally resolves to.
	Target *Provider `json:"target,omitempty"`
	// RemovedBy is the whiteout that deleted the path or a parent of it.
	RemovedBy *Provider `json:"removed_by,omitempty"`
}

// Why explains p: the layer that provides it and from which source, what
// it hides in the layers below, the symlinked parents it is reached
// through, or the whiteout that removed it.
func Why(v *overlay.View, p string) Explanation {
	clean := path.Clean("/" + p)
	x := Explanation{Path: clean, Via: hops(v, clean)}
	n, ok := v.Get(clean)
	if !ok {
		x.RemovedBy = removal(v, clean, x.Via)
		return x
	}
	x.Found = true
	if n.Path != clean {
		x.Resolved = n.Path
	}
	pr := providerOf(&n.Entry)
	x.Provider = &pr
	for i := range n.Shadowed {
		x.Shadows = append(x.Shadows, providerOf(&n.Shadowed[i]))
	}
	if n.Type == overlay.Symlink {
		if t, ok := v.Resolve(clean); ok {
			tp := providerOf(&t.Entry)
			x.Target = &tp
		}
	}
	return x
}

// hops lists the symlinks among p's parents, in the order they are met.
func hops(v *overlay.View, p string) []Hop {
	var out []Hop
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := 1; i < len(parts); i++ {
		prefix := "/" + strings.Join(parts[:i], "/")
		n, ok := v.Get(prefix)
		if !ok {
			break
		}
		if n.Type == overlay.Symlink {
			out = append(out, Hop{Link: n.Path, Target: n.Linkname, Layer: n.Layer})
		}
	}
	return out
}

// removal finds the whiteout that deleted p or one of its parents, looking
// both at the path as written and at the path its symlinked parents lead
// to.
func removal(v *overlay.View, p string, via []Hop) *Provider {
	candidates := []string{p}
	if len(via) > 0 {
		if dir, ok := v.Resolve(path.Dir(p)); ok {
			candidates = append(candidates, path.Join(dir.Path, path.Base(p)))
		}
	}
	for _, c := range candidates {
		for q := c; q != "/"; q = path.Dir(q) {
			if e, ok := v.Removed[q]; ok {
				pr := providerOf(&e)
				return &pr
			}
		}
	}
	return nil
}
