package inspect

import (
	"slices"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
	"github.com/volantvm/fledge/overlay/ldso"
)

// programs are the programs the image runs: the entry points, and every
// executable a mapping or an edit puts in the image.
func (c *checker) programs() []string {
	var out []string
	for _, n := range c.entryPoints() {
		out = append(out, n.Path)
	}
	for _, p := range ldso.Programs(c.v, overlay.MappingsLayer, edits.LayerName) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// loaded resolves, once per check, what the loader maps for every program,
// the way the guest's loader will: from the image alone.
func (c *checker) loaded() (*ldso.Closure, error) {
	if c.closure != nil {
		return c.closure, nil
	}
	img := &ldso.Source{FS: ldso.Image{V: c.v}}
	cl, err := ldso.Resolve([]*ldso.Source{img}, c.programs(), &ldso.Cache{})
	if err != nil {
		return nil, err
	}
	c.closure = cl
	return cl, nil
}

// checkInterp reports programs whose ELF interpreter the image lacks.
func checkInterp(c *checker) error {
	return c.reportMissing(true)
}

// checkLibs follows DT_NEEDED from every program through every library
// found, so a library missing two levels down is reported too, at the
// object that needs it and naming the program.
func checkLibs(c *checker) error {
	return c.reportMissing(false)
}

func (c *checker) reportMissing(interp bool) error {
	cl, err := c.loaded()
	if err != nil {
		return err
	}
	for _, m := range cl.Missing {
		if m.Interp == interp {
			c.report(m.Needer, "%s", m.String("not in the image"))
		}
	}
	return nil
}
