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
// the agent it execs, and the workload's entrypoint when it is in the image.
// Symlinks are followed, as exec does.
func (c *checker) entryPoints() []*overlay.Node {
	paths := []string{"/init"}
	if c.opts.WantKestrel {
		paths = append(paths, "/bin/kestrel")
	}
	if p, ok := c.entrypoint(); ok {
		paths = append(paths, p)
	}
	var out []*overlay.Node
	for _, p := range paths {
		if n, ok := c.v.Resolve(p); ok && n.Type == overlay.Regular {
			out = append(out, n)
		}
	}
	return out
}

// entrypoint is the image path of the workload's entrypoint: the path
// itself, or for a bare name the first folder of PATH with an executable
// of that name. ok is false when the manifest names none, or a bare name
// no folder of PATH has.
func (c *checker) entrypoint() (p string, ok bool) {
	e := c.opts.Entrypoint
	switch {
	case e == "":
		return "", false
	case strings.Contains(e, "/"):
		return path.Clean("/" + e), true
	}
	for _, d := range binDirs {
		if c.executable(path.Join(d, e)) {
			return path.Join(d, e), true
		}
	}
	return "", false
}

// entrypointKey names where the entrypoint comes from, for messages.
func (c *checker) entrypointKey() string {
	if c.opts.Manifest == "" {
		return "workload.entrypoint"
	}
	return "workload.entrypoint of " + c.opts.Manifest
}

func checkEntrypointPresent(c *checker) error {
	e := c.opts.Entrypoint
	if e == "" {
		return nil
	}
	p, ok := c.entrypoint()
	if !ok {
		c.report(e, "%s is %s, and no folder of PATH (%s) has an executable of that name", c.entrypointKey(), e, strings.Join(binDirs, ":"))
		return nil
	}
	n, ok := c.v.Get(p)
	switch {
	case !ok:
		c.report(p, "%s is %s, which is not in the image", c.entrypointKey(), p)
	case n.Type == overlay.Symlink:
		if _, ok := c.v.Resolve(p); !ok {
			c.report(p, "%s is %s, a symlink to %s, which is not in the image", c.entrypointKey(), p, n.Linkname)
		}
	}
	return nil
}

func checkEntrypointExecutable(c *checker) error {
	p, ok := c.entrypoint()
	if !ok {
		return nil
	}
	n, ok := c.v.Resolve(p)
	if !ok {
		return nil
	}
	why, err := c.notRunnable(p, n)
	if why != "" {
		c.report(p, "%s: %s", c.entrypointKey(), why)
	}
	return err
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
	if !ok {
		return nil
	}
	why, err := c.notRunnable("/init", n)
	if why != "" {
		c.report("/init", "%s", why)
	}
	return err
}

// notRunnable says why the kernel cannot execute n, reached at p, or ""
// when nothing stops it.
func (c *checker) notRunnable(p string, n *overlay.Node) (string, error) {
	switch {
	case n.Type != overlay.Regular:
		return fmt.Sprintf("%s is a %s, not a regular file", p, n.Type), nil
	case n.Perm&0o111 == 0:
		return fmt.Sprintf("%s has mode %s: no execute permission, so the kernel cannot run it", p, ModeString(&n.Entry)), nil
	}
	info, err := c.elfOf(n)
	if err != nil || info == nil || info.Machine != elf.EM_NONE {
		return "", err
	}
	return fmt.Sprintf("%s starts with the ELF magic but its headers do not parse (a truncated or damaged file), so the kernel cannot run it", p), nil
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
