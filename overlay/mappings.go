package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mapping places a host file or directory at a guest path.
type Mapping struct {
	Host  string // absolute host path
	Guest string // clean absolute guest path
}

// Mappings returns the layer of host files placed by the recipe. It is
// live: every call to Entries reads the host again, and file contents are
// opened only when a view asks, so nothing is staged or copied.
//
// Every host path must resolve inside root (the recipe's folder) unless it
// was given as an absolute path. Symlinks inside a mapped directory are
// placed as symlinks, never followed, so a link cannot pull another host
// file into the image.
func Mappings(root string, ms []Mapping) Layer {
	return &mappings{root: root, list: ms}
}

// MappingsLayer is the name of the layer Mappings returns.
const MappingsLayer = "mappings"

type mappings struct {
	root string
	list []Mapping
}

func (m *mappings) Name() string { return MappingsLayer }

func (m *mappings) Entries() ([]Entry, error) {
	var out []Entry
	for _, mp := range m.list {
		host, err := ResolveHost(m.root, mp.Host)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", mp.Host, err)
		}
		fi, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", mp.Host, err)
		}
		if !fi.IsDir() {
			st, _ := fi.Sys().(*syscall.Stat_t)
			e, err := hostEntry(host, mp.Guest, fi.Mode(), st)
			if err != nil {
				return nil, fmt.Errorf("mapping %s: %w", mp.Host, err)
			}
			out = append(out, e)
			continue
		}
		grow := func(n int) { out = slices.Grow(out, n) }
		err = walkHost(host, mp.Guest, m.workspace(), grow, func(p, guest string, st *syscall.Stat_t) error {
			e, err := hostEntry(p, guest, statMode(st), st)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", mp.Host, err)
		}
	}
	return out, nil
}

// hostNode is one object of a walked host tree: its lstat, and for a folder
// what it holds, sorted by name.
type hostNode struct {
	path, guest string
	st          syscall.Stat_t
	ok          bool  // st holds the lstat
	err         error // of the lstat, or for a folder of its read
	kids        []hostNode
}

func (n *hostNode) isDir() bool { return n.ok && n.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// walkHost calls fn for root (whose image path is guest) and everything
// below it, leaving out the folder skip, in the order of filepath.WalkDir:
// a folder before what it holds, names sorted. Folders are read and their
// entries lstat'ed on all cores first (then grow is told how many objects
// there are at most), then fn sees them in order; the first error in that
// order ends the walk. st is the lstat of p, which fn may keep.
func walkHost(root, guest, skip string, grow func(n int), fn func(p, guest string, st *syscall.Stat_t) error) error {
	top := &hostNode{path: root, guest: guest}
	if err := ignoringEINTR(func() error { return syscall.Lstat(root, &top.st) }); err != nil {
		top.err = &fs.PathError{Op: "lstat", Path: root, Err: err}
	} else {
		top.ok = true
	}
	var wg sync.WaitGroup
	var count atomic.Int64
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	// A folder's reader is started once it has a slot, so no more
	// goroutines wait than there are folders being read.
	var read func(n *hostNode)
	read = func(n *hostNode) {
		defer wg.Done()
		n.read()
		count.Add(int64(len(n.kids)))
		<-sem
		for i := range n.kids {
			if k := &n.kids[i]; k.isDir() && k.path != skip {
				sem <- struct{}{}
				wg.Add(1)
				go read(k)
			}
		}
	}
	if top.isDir() && root != skip {
		sem <- struct{}{}
		wg.Add(1)
		read(top)
	}
	wg.Wait()
	grow(1 + int(count.Load()))
	var visit func(n *hostNode) error
	visit = func(n *hostNode) error {
		switch {
		case !n.ok:
			return n.err
		case n.isDir() && n.path == skip:
			return nil
		}
		if err := fn(n.path, n.guest, &n.st); err != nil {
			return err
		}
		if n.err != nil {
			return n.err
		}
		for i := range n.kids {
			if err := visit(&n.kids[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(top)
}

// read lists folder n and takes the lstat of each entry relative to the
// open folder, so the kernel does not resolve the folder's path again for
// every name in it.
func (n *hostNode) read() {
	f, err := os.Open(n.path)
	if err != nil {
		n.err = err
		return
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		n.err = err
		return
	}
	slices.Sort(names)
	fd := int(f.Fd())
	n.kids = make([]hostNode, len(names))
	for i, name := range names {
		k := &n.kids[i]
		k.path, k.guest = joinBoth(n.path, n.guest, name)
		err := ignoringEINTR(func() error {
			return unix.Fstatat(fd, name, (*unix.Stat_t)(unsafe.Pointer(&k.st)), unix.AT_SYMLINK_NOFOLLOW)
		})
		if err != nil {
			k.err = &fs.PathError{Op: "lstat", Path: k.path, Err: err}
		} else {
			k.ok = true
		}
	}
}

// ignoringEINTR calls fn again while it is interrupted, as package os does
// around its system calls.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// unix.Stat_t and syscall.Stat_t are both the kernel's struct stat, field
// for field: read folders fill the one Entry.HostStat keeps through the
// other. These fail to compile should their sizes ever differ.
var (
	_ [unsafe.Sizeof(syscall.Stat_t{}) - unsafe.Sizeof(unix.Stat_t{})]byte
	_ [unsafe.Sizeof(unix.Stat_t{}) - unsafe.Sizeof(syscall.Stat_t{})]byte
)

// joinBoth joins name to the host folder dir and to its image path guest,
// both clean, without cleaning again (as filepath.Join and path.Join
// would), the two in one allocation.
func joinBoth(dir, guest, name string) (string, string) {
	sep := func(p string) string {
		if strings.HasSuffix(p, "/") {
			return ""
		}
		return "/"
	}
	a, b := sep(dir), sep(guest)
	both := dir + a + name + guest + b + name
	n := len(dir) + len(a) + len(name)
	return both[:n], both[n:]
}

// Watch implements Live: every folder below a mapped folder (the recipe's
// workspace left out, as Entries leaves it out), and every mapping's own
// host path.
func (m *mappings) Watch() (dirs, names []string) {
	workspace := m.workspace()
	for _, mp := range m.list {
		// As given, too: a symlink there may be pointed elsewhere.
		names = append(names, mp.Host)
		host, err := ResolveHost(m.root, mp.Host)
		if err != nil {
			continue
		}
		names = append(names, host)
		// Folders only: the walk reads each folder once and stats nothing.
		_ = filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil || !d.IsDir():
				return nil
			case p == workspace:
				return filepath.SkipDir
			}
			dirs = append(dirs, p)
			return nil
		})
	}
	return dirs, names
}

// Workspace is the folder, beside the recipe, where fledge keeps its own
// state (the edits made through the mount).
const Workspace = ".fledge"

// workspace returns the resolved path of the recipe's workspace folder. A
// mapped folder that contains it (mapping "." for instance) must not pull
// fledge's own state into the image: the edits are a layer of their own.
func (m *mappings) workspace() string {
	if m.root == "" {
		return ""
	}
	root, err := filepath.EvalSymlinks(m.root)
	if err != nil {
		return ""
	}
	return filepath.Join(root, Workspace)
}

// ResolveHost follows symlinks in a host path taken from a recipe and
// refuses a path under root that leads outside it: "./app" must not become
// /etc/shadow through a planted link. A path given outside root (an
// absolute path in the recipe) is the author's explicit choice.
func ResolveHost(root, host string) (string, error) {
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return "", err
	}
	if root == "" || !Within(root, host) {
		return real, nil
	}
	rroot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if !Within(rroot, real) {
		return "", fmt.Errorf("resolves to %s, outside the recipe folder %s; place the file inside that folder or name it by an absolute path", real, root)
	}
	return real, nil
}

// Within reports whether host path p is dir or lies below it (lexically).
func Within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// hostEntry describes one host object as an image entry. Owners and times
// are not taken from the host: they differ between checkouts and machines
// and would make the artifact irreproducible.
func hostEntry(host, guest string, mode fs.FileMode, st *syscall.Stat_t) (Entry, error) {
	e := Entry{Path: guest, Source: host}
	switch {
	case mode.IsDir():
		e.Type, e.Perm, e.Implicit = Dir, 0o755, true
	case mode.IsRegular():
		e.Type, e.Content, e.HostStat = Regular, HostFile(host), st
		if st != nil {
			e.Size = st.Size
		}
		e.Perm = 0o644
		if mode&0o111 != 0 || wantsExec(guest) {
			e.Perm = 0o755
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return e, err
		}
		e.Type, e.Perm, e.Linkname = Symlink, 0o777, target
	case mode&fs.ModeNamedPipe != 0:
		e.Type, e.Perm = FIFO, 0o644
	default:
		return e, fmt.Errorf("%s is a %s; map regular files, folders, symlinks or FIFOs (device nodes belong in the skeleton or an edit)", host, HostKind(mode))
	}
	return e, nil
}

// statMode is the fs.FileMode of a host file's lstat, as os.Lstat gives it.
func statMode(st *syscall.Stat_t) fs.FileMode {
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// HostKind names the type of a host file that is neither a regular file, a
// folder nor a symlink, as messages say it.
func HostKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// wantsExec reports whether the FHS says a file at guest is executable even
// when the host copy lost its x bits (checkouts, archives and some build
// tools drop them): anything in a bin or sbin directory, and shared
// libraries, which the dynamic loader maps executable.
func wantsExec(guest string) bool {
	dir, name := path.Split(guest)
	for c := range strings.SplitSeq(strings.Trim(dir, "/"), "/") {
		if c == "bin" || c == "sbin" || c == "libexec" {
			return true
		}
	}
	return strings.HasSuffix(name, ".so") || strings.Contains(name, ".so.")
}
