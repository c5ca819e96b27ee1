package inspect

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// entryPoints are the programs the boot runs: /init, in the default mode
// the agent it execs, and the workload's entrypoint when it is known (a
// bare name is looked for on PATH). Symlinks are followed, as exec does.
func (c *checker) entryPoints() []*overlay.Node {
	paths := []string{"/init"}
	if c.opts.WantKestrel {
		paths = append(paths, "/bin/kestrel")
	}
	if e := c.opts.Entrypoint; strings.Contains(e, "/") {
		paths = append(paths, path.Clean("/"+e))
	} else if e != "" {
		for _, d := range binDirs {
			if c.executable(path.Join(d, e)) {
				paths = append(paths, path.Join(d, e))
				break
			}
		}
	}
	var out []*overlay.Node
	for _, p := range paths {
		if n, ok := c.v.Resolve(p); ok && n.Type == overlay.Regular {
			out = append(out, n)
		}
	}
	return out
}

func checkInitPresent(c *checker) error {
	n, ok := c.v.Get("/init")
	switch {
	case !ok:
		c.report("/init", "the image has no /init; the kernel then looks for a root disk a plugin does not have")
	case n.Type == overlay.Symlink:
		if _, ok := c.v.Resolve("/init"); !ok {
			c.report("/init", "/init is a symlink to %s, which is not in the image", n.Linkname)
		}
	}
	return nil
}

func checkInitExecutable(c *checker) error {
	n, ok := c.v.Resolve("/init")
	switch {
	case !ok:
	case n.Type != overlay.Regular:
		c.report("/init", "/init is a %s, not a regular file", n.Type)
	case n.Perm&0o111 == 0:
		c.report("/init", "/init has mode %s: no execute permission, so the kernel cannot run it", ModeString(&n.Entry))
	default:
		info, err := c.elfOf(n)
		if err != nil {
			return err
		}
		if info != nil && info.Machine == elf.EM_NONE {
			c.report("/init", "/init starts with the ELF magic but its headers do not parse (a truncated or damaged file), so the kernel cannot run it")
		}
	}
	return nil
}

func checkKestrel(c *checker) error {
	if !c.opts.WantKestrel {
		return nil
	}
	n, ok := c.v.Resolve("/bin/kestrel")
	switch {
	case !ok:
		c.report("/bin/kestrel", "the default init mode execs /bin/kestrel, but the image has none")
	case n.Type != overlay.Regular || n.Perm&0o111 == 0:
		c.report("/bin/kestrel", "/bin/kestrel is a %s with mode %s, not an executable file", n.Type, ModeString(&n.Entry))
	}
	return nil
}

// ExpectsKestrel tells, for an image without a recipe, whether its /init
// is a program that hands over to /bin/kestrel: fledge's C init holds that
// path as a C string, which is how an artifact built in the default mode is
// recognised. A script naming the path may only be testing for it, so only
// ELF programs count.
func ExpectsKestrel(v *overlay.View) (bool, error) {
	n, ok := v.Resolve("/init")
	if !ok || n.Type != overlay.Regular || n.Content == nil {
		return false, nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return false, fmt.Errorf("/init: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxInitScan))
	if err != nil {
		return false, fmt.Errorf("/init: %w", err)
	}
	return bytes.HasPrefix(b, []byte(elf.ELFMAG)) && bytes.Contains(b, []byte("/bin/kestrel\x00")), nil
}

// maxInitScan bounds how much of /init ExpectsKestrel reads: fledge's init
// is about 17 KB; a large custom init is not ours.
const maxInitScan = 4 << 20
