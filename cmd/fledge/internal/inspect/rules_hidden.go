package inspect

import (
	"fmt"
	"strings"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// hiding is a directory of lower layers that a higher layer's entry
// replaced, and the programs that went with it.
type hiding struct {
	by, dir  overlay.Entry
	programs []string
}

// hidden finds, once per check, the directories whose programs a higher
// layer cut off by putting a file, link or other non-directory in their
// place, keyed by path: the executables the layers below had in the
// directory, and the links elsewhere that led to one of them (BusyBox's
// /sbin/halt -> ../bin/busybox), that the image no longer runs at the same
// path. A link to a folder that still holds them hides nothing, and an
// edit is a deliberate change, so neither counts.
func (c *checker) hidden() (map[string]*hiding, error) {
	if c.hiddenMap != nil {
		return c.hiddenMap, nil
	}
	found := map[string]*hiding{}
	c.hiddenPaths = map[string]bool{}
	below := map[string]*overlay.View{}
	err := c.v.Walk(func(n *overlay.Node) error {
		by, dir, ok := replacedDir(n)
		if !ok || by.Layer == edits.LayerName {
			return nil
		}
		lower, err := c.viewBelow(by.Layer, below)
		if err != nil || lower == nil {
			return err
		}
		h := &hiding{by: by, dir: dir}
		err = lower.Walk(func(k *overlay.Node) error {
			if r, ok := lower.Resolve(k.Path); ok && r.Type == overlay.Regular && r.Perm&0o111 != 0 &&
				(under(k.Path, []string{n.Path}) || under(r.Path, []string{n.Path})) && !c.executable(k.Path) {
				h.programs = append(h.programs, k.Path)
				c.hiddenPaths[k.Path] = true
			}
			return nil
		})
		if len(h.programs) > 0 {
			found[n.Path] = h
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.hiddenMap = found
	return found, nil
}

// replacedDir finds, among what n shadows, the nearest directory whose
// contents n's path lost: the entry right above it (by) is no directory
// it merged with. Opaque directories hide on purpose, and one layer
// replacing its own directory is that layer's business.
func replacedDir(n *overlay.Node) (by, dir overlay.Entry, ok bool) {
	by = n.Entry
	for _, e := range n.Shadowed {
		if e.Type == overlay.Dir {
			return by, e, by.Type != overlay.Dir && by.Layer != e.Layer
		}
		by = e
	}
	return by, overlay.Entry{}, false
}

// viewBelow merges the layers under the first one named layer, once per
// name; nil when the layers are not known or none has that name.
func (c *checker) viewBelow(layer string, cache map[string]*overlay.View) (*overlay.View, error) {
	if v, ok := cache[layer]; ok {
		return v, nil
	}
	var v *overlay.View
	for i, l := range c.opts.Layers {
		if l.Name() != layer {
			continue
		}
		var err error
		if v, err = (&overlay.Stack{Layers: c.opts.Layers[:i]}).View(); err != nil {
			return nil, fmt.Errorf("the layers below %s: %w", layer, err)
		}
		break
	}
	cache[layer] = v
	return v, nil
}

// maxHiddenNamed is how many hidden programs a finding names.
const maxHiddenNamed = 3

func checkHiddenPrograms(c *checker) error {
	found, err := c.hidden()
	if err != nil {
		return err
	}
	for p, h := range found {
		from := h.by.Layer
		if h.by.Source != "" {
			from += " (" + h.by.Source + ")"
		}
		named := h.programs[:min(len(h.programs), maxHiddenNamed)]
		list := strings.Join(named, ", ")
		if more := len(h.programs) - len(named); more > 0 {
			list += fmt.Sprintf(" and %d more", more)
		}
		c.report(p, "the %s from layer %s replaces the directory %s of layer %s, so %d program(s) of the layers below no longer run: %s", h.by.Type, from, p, h.dir.Layer, len(h.programs), list)
	}
	return nil
}
