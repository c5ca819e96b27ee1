package ldso

import (
	"fmt"
	"os"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/volantvm/fledge/overlay"
)

// LayerName is the provenance of the libraries layer's entries.
const LayerName = "libraries"

// Libraries returns the layer of what the programs of the layers above need
// from host: the ELF interpreter and the shared libraries of every
// executable or shared object those layers put in the image, that the
// image (below, plus above) does not provide itself. It sits between below
// and above in the stack and never shadows a path of either. Host symlinks
// on the way to a library come along as symlinks, so the paths written in
// the programs resolve in the guest.
//
// The layer is live: every call to Entries looks at what above holds now,
// so a mapped program rebuilt against another library brings that one.
// Headers of host files are parsed once per file identity (see Cache);
// resolving again still reads the loaders' configuration (ld.so.conf,
// musl's path file) and the headers of image files that have no host file.
func Libraries(below, above []overlay.Layer, host FS) overlay.Layer {
	l := &libraries{below: below, above: above, host: host, static: true}
	for _, b := range below {
		if _, ok := b.(overlay.Live); ok {
			l.static = false
		}
	}
	return l
}

type libraries struct {
	below, above []overlay.Layer
	host         FS
	// static is set when no layer below follows the host: their merged
	// view is then built once.
	static bool
	cache  Cache

	mu    sync.Mutex
	base  *overlay.View
	taken []string // the host files of the last Entries
}

// Name implements overlay.Layer.
func (l *libraries) Name() string { return LayerName }

// Watch implements overlay.Live: the host files taken, so an upgraded
// library on the host shows up. What the programs need changes with the
// layers above, which name their own host paths.
func (l *libraries) Watch() (dirs, names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return nil, append([]string(nil), l.taken...)
}

func (l *libraries) baseView() (*overlay.View, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.base != nil {
		return l.base, nil
	}
	v, err := (&overlay.Stack{Layers: l.below}).View()
	if err != nil {
		return nil, err
	}
	if l.static {
		l.base = v
	}
	return v, nil
}

// Entries implements overlay.Layer. A needed object that neither the image
// nor the host has is an error naming the program, the object and where
// it was looked for.
func (l *libraries) Entries() ([]overlay.Entry, error) {
	return l.EntriesFrom(func(a overlay.Layer) ([]overlay.Entry, error) { return a.Entries() })
}

// EntriesFrom implements overlay.Composite: the layers above are read
// through read, so a view that holds them reads each once.
func (l *libraries) EntriesFrom(read func(overlay.Layer) ([]overlay.Entry, error)) ([]overlay.Entry, error) {
	base, err := l.baseView()
	if err != nil {
		return nil, err
	}
	return l.resolve(func() (*overlay.View, error) { return base, nil }, l.above, read)
}

// EntriesOver implements overlay.Filler: a stack whose layers below the
// libraries are those the layer was made with, and whose layers above are
// the first of those it was made with, merges them once for both. The
// layers above that the stack does not hold (the edits, which a mount puts
// on its stack's view) are put on that view here.
func (l *libraries) EntriesOver(below, above []overlay.Layer, over func() (*overlay.View, error), read func(overlay.Layer) ([]overlay.Entry, error)) ([]overlay.Entry, bool, error) {
	if len(above) > len(l.above) || !sameLayers(below, l.below) || !sameLayers(above, l.above[:len(above)]) {
		return nil, false, nil
	}
	ents, err := l.resolve(over, l.above[len(above):], read)
	return ents, true, err
}

// sameLayers reports whether a and b hold the same layers in the same order.
func sameLayers(a, b []overlay.Layer) bool {
	return slices.EqualFunc(a, b, func(x, y overlay.Layer) bool {
		return reflect.TypeOf(x) == reflect.TypeOf(y) && reflect.TypeOf(x).Comparable() && x == y
	})
}

// resolve works out the entries from the layers above, all read through
// read first, the last of them, rest, put on the view that base returns.
func (l *libraries) resolve(base func() (*overlay.View, error), rest []overlay.Layer, read func(overlay.Layer) ([]overlay.Entry, error)) ([]overlay.Entry, error) {
	top := make([]overlay.Layer, 0, len(rest))
	for i, a := range l.above {
		ents, err := read(a)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", a.Name(), err)
		}
		if i >= len(l.above)-len(rest) {
			top = append(top, &overlay.Static{LayerName: a.Name(), List: ents})
		}
	}
	v, err := base()
	if err != nil {
		return nil, err
	}
	if len(top) > 0 {
		if v, err = v.With(top...); err != nil {
			return nil, err
		}
	}
	var from []string
	for _, a := range l.above {
		from = append(from, a.Name())
	}
	srcs := []*Source{{FS: Image{V: v}}, {FS: l.host}}
	cl, err := Resolve(srcs, Programs(v, from...), &l.cache)
	if err != nil {
		return nil, err
	}
	if len(cl.Missing) > 0 {
		return nil, missingError(cl.Missing)
	}
	ents, taken := l.entries(v, cl)
	l.mu.Lock()
	l.taken = taken
	l.mu.Unlock()
	return ents, nil
}

// entries turns the host objects of cl into entries at the paths the
// loader opens, leaving out any path the image has.
func (l *libraries) entries(v *overlay.View, cl *Closure) ([]overlay.Entry, []string) {
	byPath := map[string]*overlay.Entry{}
	add := func(e overlay.Entry, needed []string) {
		// Where a layer above made a folder on the way a symlink, the
		// entry goes where the link leads, so the loader finds it there
		// and the link does not hide it.
		e.Path = v.Landing(e.Path)
		if _, ok := v.Get(e.Path); ok {
			return
		}
		if old := byPath[e.Path]; old != nil {
			old.NeededBy = append(old.NeededBy, needed...)
			return
		}
		e.Layer, e.NeededBy = LayerName, append([]string(nil), needed...)
		byPath[e.Path] = &e
	}
	for _, o := range cl.Objects {
		if o.Source == 0 {
			continue
		}
		for _, ln := range o.Links {
			add(overlay.Entry{Path: ln.Path, Type: overlay.Symlink, Perm: 0o777, Linkname: ln.Target, Source: l.host.HostPath(ln.Path)}, o.NeededBy)
		}
		host := l.host.HostPath(o.Path)
		var size int64
		if fi, err := os.Stat(host); err == nil {
			size = fi.Size()
		}
		add(overlay.Entry{Path: o.Path, Type: overlay.Regular, Perm: 0o755, Size: size, Content: overlay.HostFile(host), Source: host}, o.NeededBy)
		if o.LinkDir != "" {
			add(overlay.Entry{Path: path.Join(o.LinkDir, path.Base(o.Lookup())), Type: overlay.Symlink, Perm: 0o777, Linkname: o.Lookup(), Source: host}, o.NeededBy)
		}
	}
	var ents []overlay.Entry
	var taken []string
	for _, e := range byPath {
		sort.Strings(e.NeededBy)
		e.NeededBy = slices.Compact(e.NeededBy)
		ents = append(ents, *e)
		taken = append(taken, e.Source)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Path < ents[j].Path })
	sort.Strings(taken)
	return ents, slices.Compact(taken)
}

// Programs lists the executables and shared objects of v that come from
// the named layers: the regular files with an execute bit (the mappings
// layer gives shared libraries one).
func Programs(v *overlay.View, layers ...string) []string {
	var out []string
	_ = v.Walk(func(n *overlay.Node) error {
		if n.Type == overlay.Regular && n.Perm&0o111 != 0 && slices.Contains(layers, n.Layer) {
			out = append(out, n.Path)
		}
		return nil
	})
	return out
}

// missingError is one line: the first missing object, and how many more.
func missingError(ms []Missing) error {
	msg := ms[0].describe("found neither in the image nor on the host", true)
	if len(ms) > 1 {
		msg += fmt.Sprintf(" (and %d more missing)", len(ms)-1)
	}
	return fmt.Errorf("%s; install it on the host, add it to the image (a rootfs or a mapping), or set [source] host_libraries = false", msg)
}

// String says what is missing for whom and where it was looked for;
// verdict says where it is not ("not in the image").
func (m Missing) String(verdict string) string {
	return m.describe(verdict, false)
}

// maxNamed is how many of the folders looked in a message names: a
// RUNPATH may hold thousands.
const maxNamed = 8

// describe is String, naming the program's architecture when arch is set:
// a foreign program's libraries are looked for in its own folders.
func (m Missing) describe(verdict string, arch bool) string {
	what := m.Name
	if m.Interp {
		what = "the ELF interpreter " + m.Name
	}
	if arch {
		what += " (" + m.Arch + ")"
	}
	who := m.Needer
	if m.Needer != m.Program {
		who = fmt.Sprintf("%s (loaded for %s)", m.Needer, m.Program)
	}
	where := ""
	if n := len(m.Looked); n > maxNamed {
		where = fmt.Sprintf(" (looked in %s and %d more)", strings.Join(m.Looked[:maxNamed], ", "), n-maxNamed)
	} else if n > 0 {
		where = " (looked in " + strings.Join(m.Looked, ", ") + ")"
	}
	return fmt.Sprintf("%s needs %s, %s%s", who, what, verdict, where)
}
