package inspect

import (
	"fmt"
	"io"

	"github.com/volantvm/fledge/overlay"
)

// Cat writes the content of the file at p to w. Symlinks are followed in
// the image, the way the guest would follow them, never on the host.
func Cat(w io.Writer, v *overlay.View, p string) error {
	n, ok := v.Resolve(p)
	if !ok {
		if l, ok := v.Get(p); ok && l.Type == overlay.Symlink {
			return fmt.Errorf("%s is a symlink to %s, which is not in the image", p, Escape(l.Linkname))
		}
		return fmt.Errorf("%s: not in the image (try 'fledge why %s' to see whether something removed it)", p, p)
	}
	switch n.Type {
	case overlay.Regular:
		return copyContent(w, n)
	case overlay.Dir:
		return fmt.Errorf("%s is a directory; list it with 'fledge ls %s' or write it out with 'fledge extract DIR %s'", p, p, p)
	}
	return fmt.Errorf("%s is a %s, which has no content to print; 'fledge ls -l %s' shows it", p, n.Type, p)
}
