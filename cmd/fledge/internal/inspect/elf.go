package inspect

import (
	"fmt"
	"io"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/ldso"
)

// head returns up to n bytes from the start of a regular file.
func head(n *overlay.Node, size int) ([]byte, error) {
	if n.Content == nil {
		return nil, nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	defer r.Close()
	b := make([]byte, size)
	k, err := r.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return b[:k], nil
}

// elfOf parses n when it is an ELF file and returns nil when it is not.
// Only headers, program headers and the dynamic section are read, through
// the content's ReaderAt: nothing is extracted.
func (c *checker) elfOf(n *overlay.Node) (*ldso.ELF, error) {
	if info, ok := c.elfCache[n]; ok {
		return info, nil
	}
	if n.Type != overlay.Regular || n.Content == nil {
		return nil, nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	defer r.Close()
	info, err := ldso.ReadELF(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	c.elfCache[n] = info
	return info, nil
}
