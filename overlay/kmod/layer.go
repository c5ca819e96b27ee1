package kmod

import (
	"fmt"
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// LayerName is the provenance of the modules layer's entries.
const LayerName = "modules"

// LoadList is the image file that lists the closure's modules, one
// absolute path a line, in load order: the C init loads it in default
// mode, and a custom init can (see docs/kernel.md).
const LoadList = "/etc/fledge/modules"

// Layer returns the modules layer: each module of the closure under
// /lib/modules/VERSION, decompressed, a modules.dep for them (so BusyBox
// modprobe finds them), the tree's modules.builtin (so it knows the
// built-ins), and LoadList.
func (c *Closure) Layer() overlay.Layer {
	dir := path.Join("/lib/modules", c.Tree.Version)
	src := c.Tree.Dir
	ents := []overlay.Entry{
		file(path.Join(dir, "modules.dep"), []byte(c.ModulesDep()), src),
		file(LoadList, []byte(c.loadList()), src),
	}
	for _, m := range c.Modules {
		e := file(m.Guest, m.Data, m.Host)
		e.NeededBy = m.NeededBy
		ents = append(ents, e)
	}
	if len(c.Tree.builtinFile) > 0 {
		ents = append(ents, file(path.Join(dir, "modules.builtin"), c.Tree.builtinFile, path.Join(src, "modules.builtin")))
	}
	return &overlay.Static{LayerName: LayerName, List: ents}
}

func file(guest string, data []byte, source string) overlay.Entry {
	return overlay.Entry{Path: guest, Type: overlay.Regular, Perm: 0o644, Size: int64(len(data)), Content: overlay.Bytes(data), Source: source}
}

// ModulesDep is the closure's modules.dep, in depmod's format: each
// module's path relative to /lib/modules/VERSION, then every module it
// needs, directly or not, the ones loaded last first (modprobe loads the
// list from its end).
func (c *Closure) ModulesDep() string {
	byName := map[string]*Module{}
	for _, m := range c.Modules {
		byName[m.Name] = m
	}
	rel := func(m *Module) string { return stripCompression(m.Rel) }
	var b strings.Builder
	for _, m := range c.Modules {
		var order []*Module
		seen := map[string]bool{}
		var walk func(*Module)
		walk = func(m *Module) {
			for _, d := range m.Deps {
				if dm := byName[d]; dm != nil && !seen[d] {
					seen[d] = true
					walk(dm)
					order = append(order, dm)
				}
			}
		}
		walk(m)
		fmt.Fprintf(&b, "%s:", rel(m))
		for i := len(order) - 1; i >= 0; i-- {
			fmt.Fprintf(&b, " %s", rel(order[i]))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (c *Closure) loadList() string {
	var b strings.Builder
	for _, m := range c.Modules {
		b.WriteString(m.Guest)
		b.WriteByte('\n')
	}
	return b.String()
}
