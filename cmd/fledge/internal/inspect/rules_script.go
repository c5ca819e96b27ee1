package inspect

import (
	"bytes"
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// binDirs hold the executables a script may be run from.
var binDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// checkShebangs looks at /init and every executable file in the bin
// folders. A folder reached twice (a merged /usr links /bin to usr/bin) is
// read once.
func checkShebangs(c *checker) error {
	seen := map[*overlay.Node]bool{}
	var files []*overlay.Node
	if n, ok := c.v.Resolve("/init"); ok {
		files = append(files, n)
	}
	for _, d := range binDirs {
		dir, ok := c.v.Resolve(d)
		if !ok || dir.Type != overlay.Dir || seen[dir] {
			continue
		}
		seen[dir] = true
		files = append(files, c.v.Children(dir)...)
	}
	for _, n := range files {
		if seen[n] || n.Type != overlay.Regular || n.Perm&0o111 == 0 {
			continue
		}
		seen[n] = true
		if err := c.checkShebang(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) checkShebang(n *overlay.Node) error {
	b, err := head(n, 256)
	if err != nil || !bytes.HasPrefix(b, []byte("#!")) {
		return err
	}
	line, _, _ := bytes.Cut(b[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		c.report(n.Path, "%s starts with #! but names no interpreter", n.Path)
		return nil
	}
	interp := path.Clean("/" + fields[0])
	if !c.executable(interp) {
		c.report(n.Path, "%s is a script for %s, which is not an executable in the image", n.Path, fields[0])
		return nil
	}
	// "#!/usr/bin/env prog" finds prog on PATH at run time.
	if path.Base(interp) == "env" && len(fields) > 1 && !strings.HasPrefix(fields[1], "-") {
		if !c.onPath(fields[1]) {
			c.report(n.Path, "%s runs %s through env, and no folder of PATH (%s) has it", n.Path, fields[1], strings.Join(binDirs, ":"))
		}
	}
	return nil
}

func (c *checker) executable(p string) bool {
	n, ok := c.v.Resolve(p)
	return ok && n.Type == overlay.Regular && n.Perm&0o111 != 0
}

func (c *checker) onPath(prog string) bool {
	if strings.Contains(prog, "/") {
		return c.executable(prog)
	}
	for _, d := range binDirs {
		if c.executable(path.Join(d, prog)) {
			return true
		}
	}
	return false
}
