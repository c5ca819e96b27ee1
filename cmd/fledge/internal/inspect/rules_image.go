package inspect

import (
	"debug/elf"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

func checkConsole(c *checker) error {
	n, ok := c.v.Resolve("/dev/console")
	switch {
	case !ok:
		c.report("/dev/console", "the image has no /dev/console, so init starts without stdin, stdout and stderr")
	case n.Type != overlay.CharDev || n.Major != 5 || n.Minor != 1:
		c.report("/dev/console", "/dev/console is a %s (%d, %d), expected the character device 5, 1", n.Type, n.Major, n.Minor)
	}
	return nil
}

// checkShadowed reports paths where a higher layer replaces what a lower
// one put there. Directories merging is the normal case and an edit is a
// deliberate change, so neither is reported, nor a directory whose
// programs went with it: shadowed-programs reports that as an error.
func checkShadowed(c *checker) error {
	hidden, err := c.hidden()
	if err != nil {
		return err
	}
	return c.v.Walk(func(n *overlay.Node) error {
		if len(n.Shadowed) == 0 || n.Layer == edits.LayerName || n.Implicit || hidden[n.Path] != nil {
			return nil
		}
		low := n.Shadowed[0]
		if low.Implicit || low.Layer == n.Layer || (low.Type == overlay.Dir && n.Type == overlay.Dir) {
			return nil
		}
		from := low.Layer
		if low.Source != "" {
			from += " (" + low.Source + ")"
		}
		c.report(n.Path, "the %s from layer %s hides the %s from layer %s", n.Type, n.Layer, low.Type, from)
		return nil
	})
}

// firmwareDirs hold blobs for other processors, which are ELF files of
// other architectures by design.
var firmwareDirs = []string{"/lib/firmware", "/usr/lib/firmware"}

// checkArch compares every executable and shared object with /init. Object
// files of type ET_REL (kernel modules) are the kernel's business.
func checkArch(c *checker) error {
	init, ok := c.v.Resolve("/init")
	if !ok {
		return nil
	}
	ref, err := c.elfOf(init)
	if err != nil || ref == nil || ref.Machine == elf.EM_NONE {
		// A damaged ELF /init has no architecture to compare with;
		// init-not-executable reports it.
		return err
	}
	return c.v.Walk(func(n *overlay.Node) error {
		if n.Type != overlay.Regular || n.Size < 52 || under(n.Path, firmwareDirs) {
			return nil
		}
		info, err := c.elfOf(n)
		if err != nil || info == nil {
			return err
		}
		if info.Type == elf.ET_REL {
			return nil
		}
		if info.Machine != ref.Machine || info.Class != ref.Class {
			c.report(n.Path, "%s is an ELF file for %s, but /init is for %s", n.Path, info.Arch(), ref.Arch())
		}
		return nil
	})
}
