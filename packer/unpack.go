package packer

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// The view of an artifact is what the kernel builds from it: the kernel is
// the oracle. unpack replays the members, in archive order, on a small
// in-memory file system the way init/initramfs.c (Linux 6.1, the kernel the
// tests boot) replays them on rootfs, and the entries are what is left at
// the end. The rules, each reproduced below where the kernel applies it:
//
//   - do_header skips a member that is not a regular file and carries data
//     (a folder or device with a body) and a symlink target longer than
//     PATH_MAX, before touching anything (a longer name is refused by the
//     scanner already).
//   - clean_path, before every member: whatever is at the path (not
//     following a symlink there) and differs in type is removed, a folder
//     only when it is empty (rmdir), anything else by unlink. A symlink and
//     a later hard link first remove whatever is there, whatever its type.
//   - Paths are opened, never created on the way: a parent that is missing,
//     a file, or a dangling or looping symlink makes the member fail
//     (ENOENT, ENOTDIR, ELOOP) and it is dropped; a symlinked parent is
//     followed (relative targets from the link's folder, absolute ones from
//     the root, 40 links at most).
//   - A regular file is opened O_CREAT|O_TRUNC: an existing file keeps its
//     inode, so the other names of a hard link see the new data; a
//     non-empty folder in the way makes it fail (EISDIR).
//   - Hard links (nlink >= 2) are matched by (dev major, dev minor, ino,
//     file type) within one archive (the table is freed at each trailer):
//     the first member creates the inode and is remembered even if creating
//     it failed; a later one is link()ed to the first's path (dropped if
//     that fails), then opened without O_TRUNC: its data, if it has any,
//     replaces the inode's, its mode and owner apply to all names.
//   - mkdir of an existing folder fails, but its chown and chmod still
//     apply, so a repeated folder takes the last member's mode and owner and
//     keeps its children; mknod likewise for a repeated device, which keeps
//     the first one's device numbers.
//   - A symlink gets mode 0777 whatever the header says; its target is read
//     as a C string, up to the first NUL, and may be empty (the kernel's
//     own getname_kernel does not refuse "", unlike symlink(2)).
//   - A member of no known file type only clears its path.
//   - Folder times are set after the whole image is unpacked, the earliest
//     member last, so the first member of a repeated folder gives its time.
//
// Names holding ".." are refused before any of this (the artifact does not
// open): the kernel would resolve them inside rootfs, but no honest archive
// has them and a hostile one uses them to climb out of extraction folders.
func unpack(ms []member, stream io.ReaderAt) ([]overlay.Entry, error) {
	fs := newRootfs()
	for _, m := range ms {
		p, err := overlay.CleanPath(m.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %q (archive %d): %w", m.Name, m.archive+1, err)
		}
		if err := fs.replay(m, p, stream); err != nil {
			return nil, fmt.Errorf("entry %q (archive %d): %w", m.Name, m.archive+1, err)
		}
	}
	fs.setDirTimes()
	return fs.entries(), nil
}

// The kernel's limits and the S_IFMT values of the header's mode.
const (
	pathMax  = 4096
	maxLinks = 40
	sIFMT    = 0o170000
	sIFREG   = 0o100000
	sIFDIR   = 0o040000
	sIFLNK   = 0o120000
)

// inode is one object of the simulated rootfs; a regular file may have
// several names.
type inode struct {
	e      overlay.Entry // Path is unused; the names are in the folders
	kids   map[string]*inode
	parent *inode // of a folder
	id     int
}

func (n *inode) ifmt() uint32 { return n.e.UnixMode() & sIFMT }

type linkKey struct {
	major, minor uint32
	ino          uint64
	ifmt         uint32
}

type dirTime struct {
	path  string
	mtime time.Time
}

type rootfs struct {
	root *inode
	// rootSet tells whether a member set the root's metadata (the "."
	// entry); otherwise the view keeps its own root.
	rootSet  bool
	nextID   int
	links    map[linkKey]string
	archive  int
	dirTimes []dirTime
}

func newRootfs() *rootfs {
	root := &inode{e: overlay.Entry{Type: overlay.Dir, Perm: 0o755}, kids: map[string]*inode{}}
	root.parent = root
	return &rootfs{root: root, links: map[linkKey]string{}}
}

func (fs *rootfs) newInode(e overlay.Entry) *inode {
	fs.nextID++
	n := &inode{e: e, id: fs.nextID}
	if e.Type == overlay.Dir {
		n.kids = map[string]*inode{}
	}
	return n
}

// replay applies one member as do_header, do_name, do_copy and
// do_symlink do.
func (fs *rootfs) replay(m member, p string, stream io.ReaderAt) error {
	if m.archive != fs.archive {
		// free_hash at the trailer: links never span archives.
		fs.archive, fs.links = m.archive, map[linkKey]string{}
	}
	ifmt := m.Mode & sIFMT
	switch {
	case ifmt == sIFLNK && m.Size > pathMax:
		return nil
	case ifmt == sIFLNK:
		return fs.symlink(m, p, stream)
	case ifmt != sIFREG && m.Size != 0:
		return nil
	}
	fs.clean(p, ifmt)
	t, perm, err := overlay.FromUnixMode(m.Mode)
	if err != nil {
		return nil // no known type: the path was only cleared
	}
	e := entry(m, t, perm, stream)
	switch t {
	case overlay.Regular:
		fs.regular(m, p, e)
	case overlay.Dir:
		fs.mkdir(m, p, e)
	default:
		fs.mknod(m, p, e)
	}
	return nil
}

// regular is do_name's S_ISREG branch and do_copy.
func (fs *rootfs) regular(m member, p string, e overlay.Entry) {
	linked, ok := fs.maybeLink(m, p)
	if !ok {
		return
	}
	dir, name, err := fs.parent(p)
	if err != nil {
		return
	}
	n := dir.kids[name]
	switch {
	case n == nil:
		n = fs.newInode(overlay.Entry{Type: overlay.Regular})
		dir.kids[name] = n
	case n.e.Type != overlay.Regular:
		// A folder clean_path could not remove: EISDIR. (A link member
		// whose first path now holds a symlink would be written through
		// it by the kernel; such a member is dropped here instead.)
		return
	}
	n.e.Perm, n.e.UID, n.e.GID, n.e.MTime = e.Perm, e.UID, e.GID, e.MTime
	if m.Size > 0 || !linked {
		// O_TRUNC, or ftruncate to the body's length, then the body.
		n.e.Size, n.e.Content = e.Size, e.Content
	}
}

// maybeLink is the kernel's maybe_link: linked tells whether p was made a
// new name of an earlier member's inode; ok is false when the member is
// to be dropped.
func (fs *rootfs) maybeLink(m member, p string) (linked, ok bool) {
	if m.NLink < 2 {
		return false, true
	}
	k := linkKey{m.DevMajor, m.DevMinor, m.Ino, m.Mode & sIFMT}
	old, seen := fs.links[k]
	if !seen {
		fs.links[k] = p
		return false, true
	}
	fs.clean(p, 0)
	return true, fs.link(old, p)
}

// link is link(2): old is not followed if it is a symlink, and must not
// be a folder; p must not exist.
func (fs *rootfs) link(old, p string) bool {
	n := fs.lstat(old)
	if n == nil || n.e.Type == overlay.Dir {
		return false
	}
	dir, name, err := fs.parent(p)
	if err != nil || dir.kids[name] != nil {
		return false
	}
	dir.kids[name] = n
	return true
}

// mkdir is do_name's S_ISDIR branch: mkdir, then chown and chmod, which
// apply to a folder that was already there.
func (fs *rootfs) mkdir(m member, p string, e overlay.Entry) {
	// dir_add comes whatever mkdir did: the time goes to what is at the
	// path when the unpack ends.
	fs.dirTimes = append(fs.dirTimes, dirTime{p, e.MTime})
	n := fs.lstat(p)
	if p == "/" {
		fs.rootSet = true
	} else if n == nil {
		dir, name, err := fs.parent(p)
		if err != nil {
			return
		}
		n = fs.newInode(overlay.Entry{Type: overlay.Dir})
		n.parent = dir
		dir.kids[name] = n
	}
	n.e.Perm, n.e.UID, n.e.GID = e.Perm, e.UID, e.GID
}

// mknod is do_name's branch for devices, FIFOs and sockets: a linked
// member gets nothing more; mknod over what is still there (a node of the
// same type, or a folder clean_path could not remove) fails, but chown,
// chmod and the time still apply to it, so a full folder takes a device's
// permissions and a repeated device keeps its first device numbers.
func (fs *rootfs) mknod(m member, p string, e overlay.Entry) {
	if linked, ok := fs.maybeLink(m, p); linked || !ok {
		return
	}
	n := fs.lstat(p)
	if n == nil {
		dir, name, err := fs.parent(p)
		if err != nil {
			return
		}
		n = fs.newInode(overlay.Entry{Type: e.Type, Major: e.Major, Minor: e.Minor})
		dir.kids[name] = n
	}
	n.e.Perm, n.e.UID, n.e.GID, n.e.MTime = e.Perm, e.UID, e.GID, e.MTime
}

// symlink is do_symlink: the path is cleared whatever is there, then the
// link is made if it can be.
func (fs *rootfs) symlink(m member, p string, stream io.ReaderAt) error {
	target := make([]byte, m.Size)
	if _, err := stream.ReadAt(target, m.off); err != nil {
		return fmt.Errorf("reading symlink target: %w", err)
	}
	fs.clean(p, 0)
	t, _, _ := strings.Cut(string(target), "\x00")
	if len(t) >= pathMax {
		return nil // ENAMETOOLONG
	}
	dir, name, err := fs.parent(p)
	if err != nil || dir.kids[name] != nil {
		return nil
	}
	n := fs.newInode(overlay.Entry{
		Type: overlay.Symlink, Perm: 0o777, Linkname: t, UID: m.UID, GID: m.GID,
		MTime: time.Unix(m.MTime, 0).UTC(),
	})
	dir.kids[name] = n
	return nil
}

// clean is clean_path: what is at p and differs in type from ifmt (0
// differs from everything) is removed: a folder by rmdir, so only when
// empty, anything else by unlink.
func (fs *rootfs) clean(p string, ifmt uint32) {
	n := fs.lstat(p)
	if n == nil || n == fs.root || n.ifmt() == ifmt {
		return
	}
	if n.e.Type == overlay.Dir && len(n.kids) > 0 {
		return // ENOTEMPTY
	}
	dir, name, _ := fs.parent(p)
	delete(dir.kids, name)
}

// lstat returns what is at p, following symlinks in its parents but not
// in its last component, or nil.
func (fs *rootfs) lstat(p string) *inode {
	if p == "/" {
		return fs.root
	}
	dir, name, err := fs.parent(p)
	if err != nil {
		return nil
	}
	return dir.kids[name]
}

// parent resolves the folder holding p (absolute and clean) and returns
// it with p's last component.
func (fs *rootfs) parent(p string) (*inode, string, error) {
	if p == "/" {
		// "." names the root, which exists: nothing is made there.
		return nil, "", errExist
	}
	hops := 0
	dir, err := fs.walk(fs.root, path.Dir(p), &hops)
	if err != nil {
		return nil, "", err
	}
	if dir.e.Type != overlay.Dir {
		return nil, "", errNotDir
	}
	return dir, path.Base(p), nil
}

var (
	errNotDir = fmt.Errorf("not a directory")
	errNoEnt  = fmt.Errorf("no such file or directory")
	errLoop   = fmt.Errorf("too many levels of symbolic links")
	errExist  = fmt.Errorf("file exists")
)

// walk resolves p from dir as path lookup does, following every symlink
// on the way, the last component's too; "." and ".." (which symlink
// targets may hold) are the folder itself and its parent.
func (fs *rootfs) walk(dir *inode, p string, hops *int) (*inode, error) {
	if strings.HasPrefix(p, "/") {
		dir = fs.root
	}
	cur := dir
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if cur.e.Type != overlay.Dir {
			return nil, errNotDir
		}
		if c == ".." {
			cur = cur.parent
			continue
		}
		next := cur.kids[c]
		if next == nil {
			return nil, errNoEnt
		}
		if next.e.Type == overlay.Symlink {
			if *hops++; *hops > maxLinks {
				return nil, errLoop
			}
			t, err := fs.walk(cur, next.e.Linkname, hops)
			if err != nil {
				return nil, err
			}
			next = t
		}
		cur = next
	}
	return cur, nil
}

// setDirTimes is dir_utime: the folders' times, latest member first, each
// applied to whatever is at the path now.
func (fs *rootfs) setDirTimes() {
	for i := len(fs.dirTimes) - 1; i >= 0; i-- {
		if n := fs.lstat(fs.dirTimes[i].path); n != nil {
			n.e.MTime = fs.dirTimes[i].mtime
		}
	}
}

// entries lists the tree, parents first; names of one inode share a
// LinkID.
func (fs *rootfs) entries() []overlay.Entry {
	names := map[*inode]int{}
	var count func(n *inode)
	count = func(n *inode) {
		for _, k := range n.kids {
			names[k]++
			if k.e.Type == overlay.Dir {
				count(k)
			}
		}
	}
	count(fs.root)
	var out []overlay.Entry
	if fs.rootSet {
		e := fs.root.e
		e.Path = "/"
		out = append(out, e)
	}
	var list func(n *inode, at string)
	list = func(n *inode, at string) {
		kids := make([]string, 0, len(n.kids))
		for name := range n.kids {
			kids = append(kids, name)
		}
		sort.Strings(kids)
		for _, name := range kids {
			k := n.kids[name]
			e := k.e
			e.Path = path.Join(at, name)
			e.LinkID = ""
			if e.Type == overlay.Regular && names[k] > 1 {
				e.LinkID = fmt.Sprint(k.id)
			}
			out = append(out, e)
			if k.e.Type == overlay.Dir {
				list(k, e.Path)
			}
		}
	}
	list(fs.root, "/")
	return out
}
