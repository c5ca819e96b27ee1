// Package kmod reads a kernel's module tree (lib/modules/VERSION, as a
// kernel package unpacked with dpkg-deb -x holds it, or the host's) and
// computes the modules a list of names needs, the way the kernel's own
// tools do: dependencies from modules.dep, or from each module's .modinfo
// where depmod never ran; softdeps; built-ins skipped; aliases resolved.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Tree is one kernel version's module folder.
type Tree struct {
	Root    string // the folder given: it holds lib/modules/Version
	Version string
	// Dir is the module folder, Root/lib/modules/Version (or
	// Root/usr/lib/modules/Version on a merged-/usr layout).
	Dir string
	// HasDep tells whether the tree has a modules.dep (depmod ran).
	HasDep bool

	paths   map[string]string   // module name → path relative to Dir
	deps    map[string][]string // from modules.dep: name → dependency names
	softdep map[string]softdeps // from modules.softdep, nil when absent
	builtin map[string]bool
	// builtinFile is modules.builtin as the tree has it, for the image.
	builtinFile []byte
	// aliases holds modules.alias (or, where it is absent, the aliases of
	// every module's .modinfo, read on the first name that needs them) and
	// those of the built-ins (modules.builtin.modinfo).
	aliases       []alias
	aliasesLoaded bool
	hasAliasFile  bool
}

type alias struct{ pattern, module string }

type softdeps struct{ pre, post []string }

// moduleDirs are where a root keeps its lib/modules, in the order looked.
var moduleDirs = []string{"lib/modules", "usr/lib/modules"}

// Open finds root's module folder for version, or for the one version
// there is when version is empty, and reads its index files.
func Open(root, version string) (*Tree, error) {
	base, versions, err := versionsIn(root)
	if err != nil {
		return nil, err
	}
	switch {
	case version != "":
		if !slices.Contains(versions, version) {
			return nil, fmt.Errorf("kernel.version %q: no %s; found %s", version, filepath.Join(base, version), listOr(versions, "no version"))
		}
	case len(versions) == 1:
		version = versions[0]
	default:
		return nil, fmt.Errorf("kernel.path %s holds several kernels in %s (%s); choose one with kernel.version", root, base, strings.Join(versions, ", "))
	}
	t := &Tree{Root: root, Version: version, Dir: filepath.Join(base, version)}
	if err := t.readIndexes(); err != nil {
		return nil, err
	}
	return t, nil
}

// Kernel is the kernel image beside the modules: Root/boot/vmlinuz-Version.
func (t *Tree) Kernel() string {
	return filepath.Join(t.Root, "boot", "vmlinuz-"+t.Version)
}

// versionsIn lists the version folders of root's lib/modules.
func versionsIn(root string) (base string, versions []string, err error) {
	for _, d := range moduleDirs {
		base = filepath.Join(root, d)
		ents, err := os.ReadDir(base)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("kernel.path: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() {
				versions = append(versions, e.Name())
			}
		}
		if len(versions) > 0 {
			return base, versions, nil
		}
	}
	return "", nil, fmt.Errorf("kernel.path %s has no lib/modules/VERSION folder; expected a kernel package unpacked with dpkg-deb -x, or \"/\" for the host's modules", root)
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}

// readIndexes reads what depmod and the kernel build leave in Dir. Only
// modules.builtin comes with every kernel package; the rest is depmod's.
func (t *Tree) readIndexes() error {
	t.builtin = map[string]bool{}
	data, err := os.ReadFile(filepath.Join(t.Dir, "modules.builtin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel.path: %w", err)
	}
	t.builtinFile = data
	for _, line := range strings.Fields(string(data)) {
		t.builtin[nameOf(line)] = true
	}
	if err := t.readDep(); err != nil {
		return err
	}
	if !t.HasDep {
		if err := t.walk(); err != nil {
			return err
		}
	}
	return t.readSoftdep()
}

// readDep reads modules.dep: "rel/path/mod.ko: rel/dep.ko rel/dep2.ko".
func (t *Tree) readDep() error {
	deps := map[string][]string{}
	paths := map[string]string{}
	found := false
	err := t.eachLine("modules.dep", func(line string) error {
		found = true
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("modules.dep line %q: expected \"MODULE: DEPENDENCIES\"", line)
		}
		if err := localPath(mod); err != nil {
			return err
		}
		name := nameOf(mod)
		paths[name] = mod
		for _, d := range strings.Fields(rest) {
			if err := localPath(d); err != nil {
				return err
			}
			deps[name] = append(deps[name], nameOf(d))
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	t.HasDep, t.deps, t.paths = true, deps, paths
	return nil
}

// walk indexes the modules of a tree without modules.dep by name. Where
// two files share a name, the one under updates/ wins, as depmod's default
// search order has it; otherwise the first in lexical order.
func (t *Tree) walk() error {
	t.paths = map[string]string{}
	return filepath.WalkDir(t.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("kernel.path: %w", err)
		}
		if !d.Type().IsRegular() || !isModule(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(t.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := nameOf(rel)
		if old, ok := t.paths[name]; !ok || (strings.HasPrefix(rel, "updates/") && !strings.HasPrefix(old, "updates/")) {
			t.paths[name] = rel
		}
		return nil
	})
}

// readSoftdep reads modules.softdep: "softdep MOD pre: A B post: C".
func (t *Tree) readSoftdep() error {
	sd := map[string]softdeps{}
	found := false
	err := t.eachLine("modules.softdep", func(line string) error {
		found = true
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return nil
		}
		sd[normalize(f[1])] = parseSoftdep(strings.Join(f[2:], " "))
		return nil
	})
	if found {
		t.softdep = sd
	}
	return err
}

// parseSoftdep reads "pre: A B post: C" (a .modinfo softdep= value or the
// tail of a modules.softdep line).
func parseSoftdep(s string) softdeps {
	var sd softdeps
	var cur *[]string
	for _, w := range strings.Fields(s) {
		switch w {
		case "pre:":
			cur = &sd.pre
		case "post:":
			cur = &sd.post
		default:
			if cur != nil {
				*cur = append(*cur, w)
			}
		}
	}
	return sd
}

// eachLine calls fn with each non-empty, non-comment line of Dir/name; a
// missing file is no error.
func (t *Tree) eachLine(name string, fn func(string) error) error {
	f, err := os.Open(filepath.Join(t.Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kernel.path: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(t.Dir, name), err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(t.Dir, name), err)
	}
	return nil
}

// localPath refuses a path from an index file that could leave Dir.
func localPath(p string) error {
	if !filepath.IsLocal(p) {
		return fmt.Errorf("module path %q leads outside the module folder", p)
	}
	return nil
}

// compressions are the suffixes a module file may have after .ko.
var compressions = []string{"", ".xz", ".zst", ".gz"}

func isModule(file string) bool {
	for _, c := range compressions {
		if strings.HasSuffix(file, ".ko"+c) {
			return true
		}
	}
	return false
}

// stripCompression drops a compression suffix: kernel/x.ko.xz → kernel/x.ko.
func stripCompression(rel string) string {
	for _, c := range compressions[1:] {
		if s, ok := strings.CutSuffix(rel, ".ko"+c); ok {
			return s + ".ko"
		}
	}
	return rel
}

// nameOf is the module name of a path: kernel/drivers/net/virtio_net.ko.xz
// → virtio_net.
func nameOf(p string) string {
	base := filepath.Base(stripCompression(p))
	return normalize(strings.TrimSuffix(base, ".ko"))
}

// normalize spells a module name the kernel's way: "-" and "_" are the
// same in module names, and the kernel keeps "_".
func normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }
