package ldso

import (
	"debug/elf"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
)

// Source is one tree libraries are looked up in: the image, the host.
type Source struct {
	FS FS

	once sync.Once
	conf []string
	musl map[string][]string
	mu   sync.Mutex
}

func (s *Source) ldSoConf() []string {
	s.once.Do(func() { s.conf = ldSoConf(s.FS) })
	return s.conf
}

func (s *Source) muslPath(arch string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.musl == nil {
		s.musl = map[string][]string{}
	}
	dirs, ok := s.musl[arch]
	if !ok {
		dirs = muslPath(s.FS, arch)
		s.musl[arch] = dirs
	}
	return dirs
}

// Cache keeps parsed ELF headers by the identity of the file (see FS.Key),
// so resolving again after nothing changed parses no file that has a key
// again. It is safe for concurrent use; the zero value is ready.
type Cache struct {
	mu sync.Mutex
	m  map[any]*ELF
}

// maxCached bounds the cache: a long mount that sees a program rebuilt
// many times starts over rather than grow.
const maxCached = 1 << 14

// Read returns the ELF headers of the regular file at p, nil when it is not
// an ELF file.
func (c *Cache) Read(fsys FS, p string) (*ELF, error) {
	key := fsys.Key(p)
	if key != nil {
		c.mu.Lock()
		e, ok := c.m[key]
		c.mu.Unlock()
		if ok {
			return e, nil
		}
	}
	r, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	e, err := ReadELF(r)
	if err != nil {
		return nil, err
	}
	if key != nil {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCached {
			c.m = map[any]*ELF{}
		}
		c.m[key] = e
		c.mu.Unlock()
	}
	return e, nil
}

// Link is a symlink met on the way to a file.
type Link struct{ Path, Target string }

// follow resolves p to a regular file, returning its path and the symlinks
// in the last component met on the way, in order. Relative targets are
// taken from the link's folder as written, which is where the kernel takes
// them from in an image that has real folders there.
func follow(fsys FS, p string) (string, []Link, bool) {
	var links []Link
	cur := path.Clean("/" + p)
	for hops := 0; hops <= maxHops; hops++ {
		st := fsys.Lstat(cur)
		switch st.Kind {
		case File:
			return cur, links, true
		case Symlink:
			links = append(links, Link{Path: cur, Target: st.Link})
			next := st.Link
			if !strings.HasPrefix(next, "/") {
				next = path.Join(path.Dir(cur), next)
			}
			cur = path.Clean("/" + next)
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// Object is a file the loader maps for some program.
type Object struct {
	Name   string // as asked: a DT_NEEDED name, or the interpreter's path
	Path   string // where the file is in its source, after Links
	Links  []Link // the symlinks from the path looked up to Path
	Source int    // index of the source it was found in
	// LinkDir is set when the folder it was found in came only from
	// ld.so.conf or musl's path file: a loader in an image without that
	// configuration does not look there, but does in LinkDir, its first
	// default folder.
	LinkDir string
	// NeededBy lists the programs whose closure holds the object, sorted.
	NeededBy []string
}

// Lookup is the path the loader opens: the first link, or the file.
func (o *Object) Lookup() string {
	if len(o.Links) > 0 {
		return o.Links[0].Path
	}
	return o.Path
}

// Missing is a needed object that no source has.
type Missing struct {
	Program string // the program being loaded
	Needer  string // the object whose DT_NEEDED or PT_INTERP names it
	Name    string
	Interp  bool     // Name is the needer's ELF interpreter
	Arch    string   // the program's architecture
	Looked  []string // where it was looked for, in order
}

// Closure is what the loader maps for a set of programs.
type Closure struct {
	Objects []*Object
	Missing []Missing
}

// loaded is an object mapped while one program loads; loader is the
// object that needed it (glibc's l_loader), up to the program.
type loaded struct {
	path   string
	src    int
	elf    *ELF
	loader *loaded
}

// resolver resolves one program.
type resolver struct {
	srcs    []*Source
	cache   *Cache
	prog    *loaded
	flavor  Flavor
	arch    string
	names   map[string]bool
	out     *Closure
	objects map[objectKey]*Object
	// paths holds each needer's search path in each source, computed
	// once: a hostile RUNPATH can hold many thousands of folders.
	paths map[pathKey][]searchDir
}

type pathKey struct {
	needer *loaded
	src    int
}

type objectKey struct {
	src  int
	path string
}

// Resolve computes the closure of programs, given by their paths in the
// first source. Each needed object is looked for in the sources in order,
// along the whole search path of the first before the next: what the
// image provides wins over the host. Programs that are not ELF files
// (scripts) or need no loader (static) add nothing.
func Resolve(srcs []*Source, programs []string, cache *Cache) (*Closure, error) {
	out := &Closure{}
	objects := map[objectKey]*Object{}
	for _, p := range programs {
		real, _, ok := follow(srcs[0].FS, p)
		if !ok {
			continue
		}
		e, err := cache.Read(srcs[0].FS, real)
		if err != nil {
			return nil, fmt.Errorf("%s: reading its ELF headers: %w", p, err)
		}
		if e == nil || e.Damaged || !e.Dynamic() {
			continue
		}
		r := &resolver{srcs: srcs, cache: cache, out: out, objects: objects, names: map[string]bool{}, paths: map[pathKey][]searchDir{}}
		r.prog = &loaded{path: real, elf: e}
		r.flavor, r.arch = flavorOf(e)
		r.run(p)
	}
	for _, o := range out.Objects {
		slices.Sort(o.NeededBy)
		o.NeededBy = slices.Compact(o.NeededBy)
	}
	return out, nil
}

// run loads the program breadth first, as ld.so does: an object whose
// name (or soname) is loaded already is not looked for again, which also
// ends a loop of DT_NEEDED.
func (r *resolver) run(program string) {
	queue := []*loaded{r.prog}
	if interp := r.prog.elf.Interp; interp != "" {
		if l := r.load(program, r.prog, interp, true); l != nil {
			queue = append(queue, l)
		}
	}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, name := range o.elf.Needed {
			if r.names[name] || (r.flavor == Musl && muslBuiltin(name)) {
				continue
			}
			r.names[name] = true
			if l := r.load(program, o, name, false); l != nil {
				queue = append(queue, l)
			}
		}
	}
}

// load finds name for needer and records it, or records it missing.
func (r *resolver) load(program string, needer *loaded, name string, interp bool) *loaded {
	var looked []string
	seen := map[string]bool{}
	for si, src := range r.srcs {
		for _, d := range r.searchPath(needer, name, si) {
			p := name
			if d.path != "" {
				p = path.Join(d.path, name)
			}
			if d.path != "" && !seen[d.path] {
				seen[d.path] = true
				looked = append(looked, d.path)
			}
			real, links, ok := follow(src.FS, p)
			if !ok {
				continue
			}
			e, err := r.cache.Read(src.FS, real)
			if err != nil || !r.compatible(e) {
				// The loader skips a file it cannot open or that is
				// for another architecture, and searches on.
				continue
			}
			if e.Soname != "" {
				r.names[e.Soname] = true
			}
			r.record(program, name, si, real, links, d.configured)
			return &loaded{path: real, src: si, elf: e, loader: needer}
		}
	}
	r.out.Missing = append(r.out.Missing, Missing{Program: program, Needer: needer.path, Name: name, Interp: interp, Arch: r.prog.elf.Arch(), Looked: looked})
	return nil
}

func (r *resolver) record(program, name string, si int, real string, links []Link, configured bool) {
	k := objectKey{si, real}
	o := r.objects[k]
	if o == nil {
		o = &Object{Name: name, Path: real, Links: links, Source: si}
		if configured {
			o.LinkDir = r.defaults()[0]
		}
		r.objects[k] = o
		r.out.Objects = append(r.out.Objects, o)
	}
	o.NeededBy = append(o.NeededBy, program)
}

// compatible reports whether the loader of the program would map e: a
// shared object of the program's architecture.
func (r *resolver) compatible(e *ELF) bool {
	want := r.prog.elf
	return e != nil && !e.Damaged && e.Type == elf.ET_DYN && e.Machine == want.Machine && e.Class == want.Class
}

// muslBuiltin reports whether musl's loader answers name itself: it is
// libc, and the libraries glibc splits off are part of it.
func muslBuiltin(name string) bool {
	for _, lib := range []string{"libc", "libpthread", "librt", "libm", "libdl", "libutil", "libxnet"} {
		if rest, ok := strings.CutPrefix(name, lib); ok && (rest == "" || strings.HasPrefix(rest, ".")) {
			return true
		}
	}
	return false
}

// defaults are the folders the program's loader searches when nothing
// configures it otherwise.
func (r *resolver) defaults() []string {
	if r.flavor == Musl {
		return muslDefault
	}
	return DefaultDirs(r.prog.elf)
}

// searchDir is one folder of a search path. origin is the source an
// $ORIGIN folder belongs to (-1 for any): the folder of an image file
// means nothing on the host.
type searchDir struct {
	path       string
	origin     int
	configured bool
}

// searchPath is the order in which the loader looks for name, needed by
// o, in source si. A name with a slash is a path and is not searched; a
// relative one depends on the working directory and is not followed.
func (r *resolver) searchPath(o *loaded, name string, si int) []searchDir {
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			return nil
		}
		return []searchDir{{origin: -1}}
	}
	k := pathKey{o, si}
	if dirs, ok := r.paths[k]; ok {
		return dirs
	}
	var dirs []searchDir
	add := func(ds []string, l *loaded, configured bool) {
		for _, d := range ds {
			sd, ok := r.expand(d, l)
			if !ok || (sd.origin >= 0 && sd.origin != si) {
				continue
			}
			sd.configured = configured
			dirs = append(dirs, sd)
		}
	}
	src := r.srcs[si]
	defaults := r.defaults()
	if r.flavor == Musl {
		// musl walks the RPATH or RUNPATH of the needer and of every
		// object that led to it, then the path file.
		for l := o; l != nil; l = l.loader {
			if rpath := slices.Concat(l.elf.RunPath, l.elf.RPath); muslRpathUsable(rpath) {
				add(rpath, l, false)
			}
		}
		add(src.muslPath(r.arch), nil, true)
	} else {
		// glibc: without a RUNPATH in the needer, the RPATHs of the
		// needer and its loaders up to the program; then the needer's
		// own RUNPATH; then the cache (ld.so.conf); then the defaults.
		if len(o.elf.RunPath) == 0 {
			for l := o; l != nil; l = l.loader {
				add(l.elf.RPath, l, false)
			}
		}
		add(o.elf.RunPath, o, false)
		add(src.ldSoConf(), nil, true)
		add(defaults, nil, false)
	}
	var out []searchDir
	seen := map[searchDir]bool{}
	for _, d := range dirs {
		if d.configured && slices.Contains(defaults, d.path) {
			d.configured = false
		}
		if key := (searchDir{path: d.path, origin: d.origin}); !seen[key] {
			seen[key] = true
			out = append(out, d)
		}
	}
	r.paths[k] = out
	return out
}

// expand substitutes the loader's tokens in a search folder: $ORIGIN is
// the folder of the object that names it, $LIB the architecture's library
// folder. Empty and relative entries (the working directory) and unknown
// tokens are dropped.
func (r *resolver) expand(d string, l *loaded) (searchDir, bool) {
	sd := searchDir{origin: -1}
	if strings.Contains(d, "$") {
		if l != nil {
			if e := expandToken(d, "ORIGIN", path.Dir(l.path), r.flavor == GNU); e != d {
				d, sd.origin = e, l.src
			}
		}
		lib := "lib"
		if t := multiarch[r.prog.elf.Machine][r.prog.elf.Class]; t != "" {
			lib = "lib/" + t
		}
		d = expandToken(d, "LIB", lib, r.flavor == GNU)
	}
	if !strings.HasPrefix(d, "/") || strings.Contains(d, "$") {
		return sd, false
	}
	sd.path = path.Clean(d)
	return sd, true
}

// expandToken replaces the loader token name, written $name or ${name},
// with value. For glibc (whole), as its is_dst decides, $name is the
// token only where no letter, digit or underscore follows: $ORIGIN_x is
// no $ORIGIN. musl's loader matches the prefix alone.
func expandToken(d, name, value string, whole bool) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(d, '$')
		if i < 0 {
			b.WriteString(d)
			return b.String()
		}
		b.WriteString(d[:i])
		rest := d[i+1:]
		switch {
		case strings.HasPrefix(rest, "{"+name+"}"):
			b.WriteString(value)
			d = rest[len(name)+2:]
		case strings.HasPrefix(rest, name) && !(whole && startsIdent(rest[len(name):])):
			b.WriteString(value)
			d = rest[len(name):]
		default:
			b.WriteByte('$')
			d = rest
		}
	}
}

func startsIdent(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// muslRpathUsable reports whether musl's loader uses an object's RPATH or
// RUNPATH at all: a "$" that does not start $ORIGIN or ${ORIGIN} anywhere
// in it makes musl drop the whole of it (fixup_rpath).
func muslRpathUsable(rpath []string) bool {
	for _, d := range rpath {
		for i := strings.IndexByte(d, '$'); i >= 0; i = strings.IndexByte(d, '$') {
			d = d[i:]
			if !strings.HasPrefix(d, "$ORIGIN") && !strings.HasPrefix(d, "${ORIGIN}") {
				return false
			}
			d = d[1:]
		}
	}
	return true
}
