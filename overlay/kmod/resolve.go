package kmod

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Module is one module of a closure.
type Module struct {
	Name string
	// Rel is the module's path in the tree, relative to Tree.Dir, as found
	// (kernel/drivers/net/virtio_net.ko.xz); Guest is where it lands in the
	// image, decompressed (/lib/modules/VERSION/kernel/…/virtio_net.ko).
	Rel, Guest string
	// Host is the file in the tree.
	Host string
	// Data is the module, decompressed: what was checked is what lands.
	Data []byte
	// Deps are the modules it needs loaded first (its hard dependencies).
	Deps []string
	// NeededBy names the modules that pulled it in; empty for one the
	// recipe named.
	NeededBy []string
	Vermagic string
}

// Closure is what a list of names needs, in load order.
type Closure struct {
	Tree    *Tree
	Modules []*Module
	// Builtin lists names that are built into the kernel and so need no
	// loading.
	Builtin []string
}

type state uint8

const (
	unvisited state = iota
	visiting
	done
)

type resolver struct {
	t       *Tree
	c       *Closure
	state   map[string]state
	stack   []string // the modules being visited, outermost first
	mods    map[string]*Module
	builtin map[string]bool
}

// Resolve computes the closure of names: each module after what it needs
// (pre softdeps, then dependencies), followed by its post softdeps.
// Built-ins are skipped; a name that is neither a module nor a built-in is
// looked up as an alias. A module the recipe names, or a dependency, that
// the tree lacks is an error; a missing softdep is skipped, as modprobe
// skips it. A dependency loop is an error. Every module must carry the
// same vermagic, for the tree's version.
func (t *Tree) Resolve(names []string) (*Closure, error) {
	r := &resolver{t: t, c: &Closure{Tree: t}, state: map[string]state{}, mods: map[string]*Module{}, builtin: map[string]bool{}}
	for _, n := range names {
		if err := r.visit(n, "", true); err != nil {
			return nil, err
		}
	}
	if err := r.checkVermagic(); err != nil {
		return nil, err
	}
	for _, m := range r.c.Modules {
		slices.Sort(m.NeededBy)
		m.NeededBy = slices.Compact(m.NeededBy)
	}
	return r.c, nil
}

// visit adds name (wanted by the module by, "" for the recipe) and what
// it needs. hard is false for a softdep.
func (r *resolver) visit(name, by string, hard bool) error {
	n := normalize(name)
	if _, ok := r.t.paths[n]; !ok {
		if r.t.builtin[n] {
			r.addBuiltin(n)
			return nil
		}
		targets, err := r.t.resolveAlias(name)
		if err != nil {
			return err
		}
		if len(targets) == 0 {
			if !hard {
				return nil
			}
			return r.missing(name, by)
		}
		for _, m := range targets {
			if err := r.visit(m, by, hard); err != nil {
				return err
			}
		}
		return nil
	}
	switch r.state[n] {
	case done:
		r.neededBy(n, by)
		return nil
	case visiting:
		if hard {
			loop := append(r.stack[slices.Index(r.stack, n):], n)
			return fmt.Errorf("kernel.modules: dependency loop %s in %s; a module cannot need itself: check modules.dep or the modules' depends=", strings.Join(loop, " -> "), r.t.Dir)
		}
		return nil
	}
	r.state[n] = visiting
	r.stack = append(r.stack, n)
	m, mi, err := r.t.load(n)
	if err != nil {
		return err
	}
	deps, sd := mi.depends, mi.softdep
	if r.t.HasDep {
		deps = r.t.deps[n]
	}
	if r.t.softdep != nil {
		sd = r.t.softdep[n]
	}
	for _, p := range sd.pre {
		if err := r.visit(p, n, false); err != nil {
			return err
		}
	}
	for _, d := range deps {
		if err := r.visit(d, n, true); err != nil {
			return err
		}
	}
	m.Deps = deps
	r.stack = r.stack[:len(r.stack)-1]
	r.mods[n] = m
	r.neededBy(n, by)
	r.state[n] = done
	r.c.Modules = append(r.c.Modules, m)
	for _, p := range sd.post {
		if err := r.visit(p, n, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *resolver) neededBy(n, by string) {
	if by != "" {
		r.mods[n].NeededBy = append(r.mods[n].NeededBy, by)
	}
}

func (r *resolver) addBuiltin(n string) {
	if !r.builtin[n] {
		r.builtin[n] = true
		r.c.Builtin = append(r.c.Builtin, n)
	}
}

func (r *resolver) missing(name, by string) error {
	what := "module " + name
	if by != "" {
		what += " (needed by " + by + ")"
	}
	return fmt.Errorf("kernel.modules: %s is not in %s: neither a module file, a built-in (modules.builtin) nor an alias; check the name (ls %s) or the kernel.path", what, r.t.Dir, r.t.Dir)
}

// checkVermagic refuses modules built for another kernel: each one's
// vermagic must name the tree's version and equal the others'. The kernel
// refuses such a module at load time; the build says so first.
func (r *resolver) checkVermagic() error {
	var ref *Module
	for _, m := range r.c.Modules {
		release, _, _ := strings.Cut(m.Vermagic, " ")
		if release != r.t.Version {
			return fmt.Errorf("kernel.modules: %s (%s) has vermagic %q, built for kernel %q, not %s; it would not load: take it from that kernel's own tree", m.Name, m.Host, m.Vermagic, release, r.t.Version)
		}
		if ref == nil {
			ref = m
		} else if m.Vermagic != ref.Vermagic {
			return fmt.Errorf("kernel.modules: %s (%s) has vermagic %q, but %s has %q; modules of one kernel build agree: take both from the same tree", m.Name, m.Host, m.Vermagic, ref.Name, ref.Vermagic)
		}
	}
	return nil
}

// load reads module n: its file, decompressed, and its .modinfo.
func (t *Tree) load(n string) (*Module, modinfo, error) {
	rel := t.paths[n]
	host := filepath.Join(t.Dir, rel)
	m := &Module{Name: n, Rel: rel, Host: host, Guest: path.Join("/lib/modules", t.Version, stripCompression(rel))}
	data, mi, err := t.read(rel)
	if err != nil {
		return nil, modinfo{}, fmt.Errorf("kernel.modules: %s: %w", host, err)
	}
	m.Data, m.Vermagic = data, mi.vermagic
	return m, mi, nil
}

// read returns a module's decompressed bytes and .modinfo. The file is
// opened within Dir, so a symlink in the tree cannot lead out of it.
func (t *Tree) read(rel string) ([]byte, modinfo, error) {
	root, err := os.OpenRoot(t.Dir)
	if err != nil {
		return nil, modinfo{}, err
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, modinfo{}, err
	}
	data, err := decompress(f, rel)
	f.Close()
	if err != nil {
		return nil, modinfo{}, err
	}
	mi, err := readModinfo(bytes.NewReader(data))
	return data, mi, err
}
