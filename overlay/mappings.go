package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
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
			e, err := hostEntry(host, mp.Guest, fi)
			if err != nil {
				return nil, fmt.Errorf("mapping %s: %w", mp.Host, err)
			}
			out = append(out, e)
			continue
		}
		err = walkHost(host, mp.Guest, m.workspace(), func(p, guest string, fi fs.FileInfo) error {
			e, err := hostEntry(p, guest, fi)
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
	fi          fs.FileInfo
	err         error // of the lstat, or for a folder of its read
	kids        []*hostNode
}

// walkHost calls fn for root (whose image path is guest) and everything
// below it, leaving out the folder skip, in the order of filepath.WalkDir:
// a folder before what it holds, names sorted. Folders are read and their
// entries lstat'ed on all cores first, then fn sees them in order; the
// first error in that order ends the walk.
func walkHost(root, guest, skip string, fn func(p, guest string, fi fs.FileInfo) error) error {
	top := &hostNode{path: root, guest: guest}
	top.fi, top.err = os.Lstat(root)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	// A folder's reader is started once it has a slot, so no more
	// goroutines wait than there are folders being read.
	var read func(n *hostNode)
	read = func(n *hostNode) {
		defer wg.Done()
		n.read()
		<-sem
		for _, k := range n.kids {
			if k.fi != nil && k.fi.IsDir() && k.path != skip {
				sem <- struct{}{}
				wg.Add(1)
				go read(k)
			}
		}
	}
	if top.err == nil && top.fi.IsDir() && root != skip {
		sem <- struct{}{}
		wg.Add(1)
		read(top)
	}
	wg.Wait()
	var visit func(n *hostNode) error
	visit = func(n *hostNode) error {
		switch {
		case n.fi == nil:
			return n.err
		case n.fi.IsDir() && n.path == skip:
			return nil
		}
		if err := fn(n.path, n.guest, n.fi); err != nil {
			return err
		}
		if n.err != nil {
			return n.err
		}
		for _, k := range n.kids {
			if err := visit(k); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(top)
}

// read lists folder n and takes the lstat of each entry.
func (n *hostNode) read() {
	ents, err := os.ReadDir(n.path)
	if err != nil {
		n.err = err
		return
	}
	n.kids = make([]*hostNode, len(ents))
	for i, d := range ents {
		k := &hostNode{path: filepath.Join(n.path, d.Name()), guest: path.Join(n.guest, d.Name())}
		k.fi, k.err = d.Info()
		n.kids[i] = k
	}
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
func hostEntry(host, guest string, fi fs.FileInfo) (Entry, error) {
	e := Entry{Path: guest, Source: host}
	switch mode := fi.Mode(); {
	case mode.IsDir():
		e.Type, e.Perm, e.Implicit = Dir, 0o755, true
	case mode.IsRegular():
		e.Type, e.Size, e.Content = Regular, fi.Size(), HostFile(host)
		e.HostStat, _ = fi.Sys().(*syscall.Stat_t)
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
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "bin" || c == "sbin" || c == "libexec" {
			return true
		}
	}
	return strings.HasSuffix(name, ".so") || strings.Contains(name, ".so.")
}
