package ldso

import (
	"fmt"
	"path"

	"github.com/volantvm/fledge/overlay"
)

// Image is the merged view of an image as the loader in the guest sees it.
type Image struct{ V *overlay.View }

// Lstat implements FS.
func (i Image) Lstat(p string) Stat {
	n, ok := i.V.Get(p)
	if !ok {
		return Stat{}
	}
	switch n.Type {
	case overlay.Regular:
		return Stat{Kind: File}
	case overlay.Dir:
		return Stat{Kind: Dir}
	case overlay.Symlink:
		return Stat{Kind: Symlink, Link: n.Linkname}
	}
	return Stat{Kind: Other}
}

// Open implements FS.
func (i Image) Open(p string) (Reader, error) {
	n, ok := i.V.Get(p)
	if !ok || n.Type != overlay.Regular || n.Content == nil {
		return nil, fmt.Errorf("%s: not a regular file of the image", p)
	}
	return n.Content.Open()
}

// ReadDir implements FS.
func (i Image) ReadDir(p string) []string {
	n, ok := i.V.Resolve(p)
	if !ok || n.Type != overlay.Dir {
		return nil
	}
	var names []string
	for _, k := range i.V.Children(n) {
		names = append(names, path.Base(k.Path))
	}
	return names
}

// Key implements FS: a file the image reads from the host (a mapping, an
// edit) is known by the host file's identity; other contents are read
// again.
func (i Image) Key(p string) any {
	if h := i.HostPath(p); h != "" {
		return statKey(h)
	}
	return nil
}

// HostPath implements FS.
func (i Image) HostPath(p string) string {
	n, ok := i.V.Get(p)
	if !ok {
		return ""
	}
	if h, ok := n.Content.(overlay.HostFile); ok {
		return string(h)
	}
	return ""
}
