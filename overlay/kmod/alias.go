package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// resolveAlias returns the modules (or built-ins) of the tree an alias
// names, sorted; none when name is no alias. Like modprobe, every match
// counts.
func (t *Tree) resolveAlias(name string) ([]string, error) {
	if err := t.loadAliases(); err != nil {
		return nil, err
	}
	n := normalizeAlias(name)
	var out []string
	for _, a := range t.aliases {
		_, isModule := t.paths[a.module]
		if !isModule && !t.builtin[a.module] {
			continue
		}
		if ok, _ := path.Match(a.pattern, n); ok && !slices.Contains(out, a.module) {
			out = append(out, a.module)
		}
	}
	slices.Sort(out)
	return out, nil
}

// loadAliases reads modules.alias, or where depmod never wrote one, the
// alias= lines of every module's .modinfo (slow: every module is read,
// so only done when a name is neither a module nor a built-in), and the
// built-ins' aliases from modules.builtin.modinfo.
func (t *Tree) loadAliases() error {
	if t.aliasesLoaded {
		return nil
	}
	t.aliasesLoaded = true
	err := t.eachLine("modules.alias", func(line string) error {
		t.hasAliasFile = true
		if f := strings.Fields(line); len(f) == 3 && f[0] == "alias" {
			t.addAlias(f[1], f[2])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !t.hasAliasFile {
		if err := t.scanAliases(); err != nil {
			return err
		}
	}
	return t.builtinAliases()
}

func (t *Tree) addAlias(pattern, module string) {
	t.aliases = append(t.aliases, alias{normalizeAlias(pattern), normalize(module)})
}

func (t *Tree) scanAliases() error {
	names := make([]string, 0, len(t.paths))
	for n := range t.paths {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		_, mi, err := t.read(t.paths[n])
		if err != nil {
			// An unreadable module stops no alias lookup; it is reported
			// when something needs it.
			continue
		}
		for _, a := range mi.aliases {
			t.addAlias(a, n)
		}
	}
	return nil
}

// builtinAliases reads modules.builtin.modinfo: NUL-separated
// "module.key=value" strings for the modules built into the kernel.
func (t *Tree) builtinAliases() error {
	data, err := os.ReadFile(filepath.Join(t.Dir, "modules.builtin.modinfo"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kernel.path: %w", err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		key, val, ok := strings.Cut(string(kv), "=")
		mod, field, ok2 := strings.Cut(key, ".")
		if ok && ok2 && field == "alias" {
			t.addAlias(val, mod)
		}
	}
	return nil
}

// normalizeAlias spells an alias as kmod compares it: "-" as "_", except
// inside a bracket expression of a pattern.
func normalizeAlias(s string) string {
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}
