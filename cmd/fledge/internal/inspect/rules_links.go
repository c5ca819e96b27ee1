package inspect

import (
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// hostDirs are where build hosts keep sources and build output. An
// absolute link there that the image cannot resolve was made on the host
// and copied in by accident.
var hostDirs = []string{"/home", "/tmp", "/root", "/build", "/work", "/var/lib", "/var/tmp", "/srv", "/opt/build", "/Users"}

// runtimeDirs are filled by the kernel or init at boot, so a link into
// them (/etc/mtab -> /proc/mounts) dangles only on paper.
var runtimeDirs = []string{"/proc", "/sys", "/dev", "/run"}

func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// linkTarget is where a symlink points, as an absolute image path.
func linkTarget(n *overlay.Node) string {
	t := n.Linkname
	if !strings.HasPrefix(t, "/") {
		t = path.Join(path.Dir(n.Path), t)
	}
	return path.Clean("/" + t)
}

// unresolved calls fn for every symlink of the image that leads nowhere.
func (c *checker) unresolved(fn func(n *overlay.Node)) error {
	return c.v.Walk(func(n *overlay.Node) error {
		if n.Type == overlay.Symlink {
			if _, ok := c.v.Resolve(n.Path); !ok {
				fn(n)
			}
		}
		return nil
	})
}

func (c *checker) hostLink(n *overlay.Node) bool {
	return strings.HasPrefix(n.Linkname, "/") && under(path.Clean(n.Linkname), append(hostDirs, c.opts.HostDirs...))
}

func checkHostLinks(c *checker) error {
	return c.unresolved(func(n *overlay.Node) {
		if c.hostLink(n) {
			c.report(n.Path, "%s -> %s points into a host build folder and does not exist in the image", n.Path, n.Linkname)
		}
	})
}

// checkDangling leaves out the programs shadowed-programs reports: the
// error names what broke them.
func checkDangling(c *checker) error {
	if _, err := c.hidden(); err != nil {
		return err
	}
	return c.unresolved(func(n *overlay.Node) {
		if c.hostLink(n) || under(linkTarget(n), runtimeDirs) || c.hiddenPaths[n.Path] {
			return
		}
		c.report(n.Path, "%s -> %s leads to nothing in the image (or loops)", n.Path, n.Linkname)
	})
}
