package edits

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// Reading the edits folder goes through directory descriptors, one
// component at a time, like every change does (see at.go): a guest
// path may be as long as the kernel allows (PATH_MAX), and the folder's own
// place on the host comes on top of that, so a host path built from the
// root could be too long for any syscall.
//
// Whatever entry cannot be read (a folder fledge may not open, an unknown
// file type, a leftover of a crash) is left out and named in Problems, so
// it costs that entry, never the whole layer.

// Problem is an entry of the edits folder that could not be read and is
// left out of the layer.
type Problem struct {
	Path string // guest path
	Err  error
}

func (p Problem) String() string {
	return fmt.Sprintf("edits of %s left out: %v; `fledge reset %s` drops them", quoteName(p.Path), p.Err, quoteName(p.Path))
}

// quoteName escapes a path for a message if it holds anything a terminal
// would not show as it is.
func quoteName(p string) string {
	if strconv.Quote(p) == `"`+p+`"` && !strings.ContainsAny(p, " '") {
		return p
	}
	return strconv.Quote(p)
}

// Problems lists the entries the last read of the folder left out, sorted
// by path.
func (e *Edits) Problems() []Problem {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	out := make([]Problem, 0, len(e.problems))
	for p, err := range e.problems {
		out = append(out, Problem{Path: p, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// scanned is what a read of (part of) the folder found.
type scanned struct {
	e *Edits
	// legacy is the folder's format (see Edits.legacy).
	legacy   bool
	tr       *tree
	problems map[string]error
}

// scan adds what the folder holds at and below guest path p, and the
// whiteout of p, to s. Only a folder that cannot be opened at all is an
// error; an entry that cannot be read is a problem.
func (s *scanned) scan(p string) error {
	s.legacy = s.e.legacy()
	if p == "/" {
		d, err := s.e.openRoot()
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the edits in %s: %w", s.e.dir, err)
		}
		defer d.close()
		var st unix.Stat_t
		if err := unix.Fstat(int(d), &st); err != nil {
			return fmt.Errorf("reading the edits in %s: %w", s.e.dir, err)
		}
		root, err := s.e.entry(d, "", "/", &st)
		if err != nil {
			return fmt.Errorf("reading the edits in %s: %w", s.e.dir, err)
		}
		if s.children(d, "/", &root) {
			s.tr.put(root)
		}
		return nil
	}
	d, err := s.e.openDir(path.Dir(p))
	if gone(err) {
		return nil
	}
	if err != nil {
		s.problems[p] = err
		return nil
	}
	defer d.close()
	name := path.Base(p)
	s.visit(d, name, p)
	if s.e.oldWhiteout(name) {
		if _, ok, _ := d.stat(whiteoutPrefix + name); ok {
			s.tr.put(s.whiteout(p))
		}
	}
	return nil
}

// gone reports an error of opening a folder that is not (or no longer) in
// the layer.
func gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// visit reads name in d, guest path p, and what is below it.
func (s *scanned) visit(d dirFD, name, p string) {
	st, ok, err := d.stat(name)
	if err != nil {
		s.problems[p] = err
		return
	}
	if !ok {
		return
	}
	if isWhiteout(&st) {
		s.tr.put(s.whiteout(p))
		return
	}
	ent, err := s.e.entry(d, name, p, &st)
	if err != nil {
		s.problems[p] = err
		return
	}
	if ent.Type == overlay.Dir {
		sub, err := d.sub(name)
		if err != nil {
			s.problems[p] = err
			return
		}
		defer sub.close()
		if !s.children(sub, p, &ent) {
			return
		}
	}
	s.tr.put(ent)
}

// children reads the entries of directory d, guest path p, and marks dir
// opaque if it holds the marker. It reports false if d cannot be listed.
func (s *scanned) children(d dirFD, p string, dir *overlay.Entry) bool {
	names, err := d.names()
	if err != nil {
		s.problems[p] = err
		return false
	}
	for _, n := range names {
		switch {
		case n == opaqueMarker:
			if dir != nil {
				dir.Opaque = true
			}
		case strings.HasPrefix(n, metaPrefix):
			// A copy-up a crash interrupted: never an edit.
		case s.legacy && strings.HasPrefix(n, whiteoutPrefix):
			s.tr.put(s.whiteout(path.Join(p, strings.TrimPrefix(n, whiteoutPrefix))))
		default:
			s.visit(d, n, path.Join(p, n))
		}
	}
	return true
}

func (s *scanned) whiteout(p string) overlay.Entry {
	return overlay.Entry{Path: p, Type: overlay.Whiteout, Layer: LayerName, Source: s.e.host(p)}
}

// host is the host path of guest path p in the folder, for messages and
// provenance; it may be too long to use.
func (e *Edits) host(p string) string {
	if p == "/" {
		return e.dir
	}
	return e.dir + p
}

// entry describes name in d, guest path p, whose lstat is st.
func (e *Edits) entry(d dirFD, name, p string, st *unix.Stat_t) (overlay.Entry, error) {
	img := *st
	if e.userFolder() {
		if err := imageStat(at(d, name), &img); err != nil {
			return overlay.Entry{}, err
		}
	}
	ent, err := statEntry(&img)
	if err != nil {
		return overlay.Entry{}, err
	}
	host := e.host(p)
	ent.Path, ent.Layer, ent.Source = p, LayerName, host
	switch ent.Type {
	case overlay.Regular:
		ent.Size = st.Size
		if len(host) < unix.PathMax {
			ent.Content = overlay.HostFile(host)
		} else {
			ent.Content = deepEdit{e: e, p: p}
		}
	case overlay.Symlink:
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			ent.Linkname, err = fileLink(d, name)
		} else {
			ent.Linkname, err = e.linkTarget(d, name, st)
		}
		if err != nil {
			return overlay.Entry{}, err
		}
	}
	if ent.Type != overlay.Dir && st.Nlink > 1 {
		ent.LinkID = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ent, nil
}

// restat re-reads the single object at guest path p (not what is below
// it) and reports whether it changed; a change is recorded for Delta.
func (e *Edits) restat(p string) (bool, error) {
	d, name, err := e.holder(p)
	if gone(err) {
		return e.restatGone(p, false), nil
	}
	if err != nil {
		return false, err
	}
	defer d.close()
	st, ok, err := d.stat(name)
	if err != nil {
		return false, err
	}
	return e.restatAs(d, name, p, &st, ok)
}

// restatAs is restat given the lstat st of p, name in d; ok is false when
// nothing is there.
func (e *Edits) restatAs(d dirFD, name, p string, st *unix.Stat_t, ok bool) (bool, error) {
	if !ok || isWhiteout(st) {
		return e.restatGone(p, ok), nil
	}
	ent, err := e.entry(d, name, p, st)
	if err != nil {
		return false, err
	}
	if ent.Type == overlay.Dir {
		if _, ok, _ := d.stat(name + "/" + opaqueMarker); ok {
			ent.Opaque = true
		}
	}
	if n := e.tr.node(p, false); n != nil && n.hasObj && sameEntry(&n.obj, &ent) {
		return false, nil
	}
	e.tr.put(ent)
	e.delta = append(e.delta, overlay.Delta{Path: p})
	return true, nil
}

// restatGone forgets the object at p, and what was below it; whiteout
// says a whiteout is there now.
func (e *Edits) restatGone(p string, whiteout bool) bool {
	n := e.tr.node(p, false)
	if n == nil || !n.hasObj && (n.hasWh || !whiteout) {
		return false
	}
	e.tr.dropBelow(p, true, func(overlay.Entry) {})
	if whiteout {
		e.tr.put(overlay.Entry{Path: p, Type: overlay.Whiteout, Layer: LayerName, Source: e.host(p)})
	}
	e.delta = append(e.delta, overlay.Delta{Path: p, Tree: true})
	return true
}

// Stat returns the lstat of the layer's object at guest path p, however
// deep it is.
func (e *Edits) Stat(p string) (unix.Stat_t, error) {
	if host := e.host(p); len(host) < unix.PathMax {
		return e.hostStat(host)
	}
	d, err := e.openDir(path.Dir(p))
	if err != nil {
		return unix.Stat_t{}, err
	}
	defer d.close()
	st, ok, err := e.lstat(d, path.Base(p))
	if err == nil && !ok {
		err = unix.ENOENT
	}
	return st, err
}

// deepEdit is the content of an edit whose host path is longer than
// PATH_MAX: it is opened through the directories on the way.
type deepEdit struct {
	e *Edits
	p string
}

func (c deepEdit) Open() (overlay.Reader, error) {
	d, err := c.e.openDir(path.Dir(c.p))
	if err != nil {
		return nil, err
	}
	defer d.close()
	f, err := d.openFile(path.Base(c.p), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	st, err := overlay.StatRegular(f, c.p)
	if err != nil {
		f.Close()
		return nil, err
	}
	return overlay.FileReader(f, st.Size), nil
}

// linkKey names one symlink for its whole life: an inode number may be
// reused, its birth time with it not.
type linkKey struct {
	dev, ino uint64
	born     unix.StatxTimestamp
}

// linkTarget returns the target of symlink name in d. Reading a target
// moves the link's atime, which the mount shows (and utimensat sets), and a
// target never changes: each link is read once, then remembered.
func (e *Edits) linkTarget(d dirFD, name string, st *unix.Stat_t) (string, error) {
	var sx unix.Statx_t
	err := unix.Statx(int(d), name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &sx)
	if err != nil || sx.Mask&unix.STATX_BTIME == 0 || sx.Ino != st.Ino {
		return d.readlink(name)
	}
	k := linkKey{dev: st.Dev, ino: st.Ino, born: sx.Btime}
	e.linksMu.Lock()
	target, ok := e.links[k]
	e.linksMu.Unlock()
	if ok {
		return target, nil
	}
	if target, err = d.readlink(name); err != nil {
		return "", err
	}
	e.linksMu.Lock()
	if e.links == nil {
		e.links = map[linkKey]string{}
	}
	e.links[k] = target
	e.linksMu.Unlock()
	return target, nil
}
