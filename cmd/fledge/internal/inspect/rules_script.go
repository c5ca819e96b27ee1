package inspect

import (
	"bytes"
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// binDirs hold the executables a script may be run from.
var binDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// script is an executable that starts with #!, and its #! line without
// the "#!" and the newline.
type script struct {
	n    *overlay.Node
	line []byte
}

// scripts finds, once per check, the scripts among the programs check
// follows (/init, the entrypoint, what mappings and edits add) and the
// executables of the bin folders. A folder reached twice (a merged /usr
// links /bin to usr/bin) is read once.
func (c *checker) scripts() ([]script, error) {
	if c.scriptList != nil {
		return *c.scriptList, nil
	}
	seen := map[*overlay.Node]bool{}
	var files []*overlay.Node
	for _, p := range c.programs() {
		if n, ok := c.v.Resolve(p); ok {
			files = append(files, n)
		}
	}
	for _, d := range binDirs {
		dir, ok := c.v.Resolve(d)
		if !ok || dir.Type != overlay.Dir || seen[dir] {
			continue
		}
		seen[dir] = true
		files = append(files, c.v.Children(dir)...)
	}
	var out []script
	for _, n := range files {
		if seen[n] || n.Type != overlay.Regular || n.Perm&0o111 == 0 {
			continue
		}
		seen[n] = true
		b, err := head(n, 256)
		if err != nil {
			return nil, err
		}
		if line, ok := bytes.CutPrefix(b, []byte("#!")); ok {
			line, _, _ = bytes.Cut(line, []byte("\n"))
			out = append(out, script{n, line})
		}
	}
	c.scriptList = &out
	return out, nil
}

// checkShebangs reports scripts whose interpreter the image lacks. A #!
// line with a carriage return is shebang-crlf's.
func checkShebangs(c *checker) error {
	list, err := c.scripts()
	if err != nil {
		return err
	}
	for _, s := range list {
		if !bytes.ContainsRune(s.line, '\r') {
			c.checkShebang(s.n, s.line)
		}
	}
	return nil
}

func (c *checker) checkShebang(n *overlay.Node, line []byte) {
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		c.report(n.Path, "%s starts with #! but names no interpreter", n.Path)
		return
	}
	interp := path.Clean("/" + fields[0])
	if !c.executable(interp) {
		c.report(n.Path, "%s is a script for %s, which is not an executable in the image", n.Path, fields[0])
		return
	}
	// "#!/usr/bin/env prog" finds prog on PATH at run time.
	if path.Base(interp) == "env" && len(fields) > 1 && !strings.HasPrefix(fields[1], "-") {
		if !c.onPath(fields[1]) {
			c.report(n.Path, "%s runs %s through env, and no folder of PATH (%s) has it", n.Path, fields[1], strings.Join(binDirs, ":"))
		}
	}
}

// checkShebangCR reports #! lines with a carriage return: Windows line
// endings. The kernel splits the line at spaces and tabs only, so the
// interpreter it looks for, or the argument it passes, ends in "\r".
func checkShebangCR(c *checker) error {
	list, err := c.scripts()
	if err != nil {
		return err
	}
	for _, s := range list {
		if !bytes.ContainsRune(s.line, '\r') {
			continue
		}
		from := ""
		if h, ok := s.n.Content.(overlay.HostFile); ok && s.n.Layer != edits.LayerName {
			from = " (from the host file " + string(h) + ")"
		}
		line := strings.TrimLeft(string(s.line), " \t")
		interp, arg := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			interp, arg = line[:i], line[i+1:]
		}
		if strings.ContainsRune(interp, '\r') {
			c.report(s.n.Path, "%s%s has Windows line endings: its #! line names the interpreter \"%s\", which is not in the image, so exec fails with ENOENT (error -2)", s.n.Path, from, interp)
		} else {
			c.report(s.n.Path, "%s%s has Windows line endings: its #! line passes \"%s\" to %s", s.n.Path, from, strings.TrimLeft(arg, " \t"), interp)
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
