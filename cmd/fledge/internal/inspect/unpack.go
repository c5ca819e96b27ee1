package inspect

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// UnpackOptions says what an unpack may do beyond what any user can.
type UnpackOptions struct {
	// Privileged keeps the image's owners and makes its device nodes;
	// otherwise files belong to the caller and device nodes are skipped.
	Privileged bool
}

// UnpackResult tells what an unpack left out.
type UnpackResult struct {
	// SkippedDevices are the device nodes an unprivileged unpack could not
	// make.
	SkippedDevices []string
}

// Unpack writes the image, or the named paths with their subtrees and the
// folders that lead to them, into dir: contents, modes, mtimes, symlinks
// and hard links, and with opt.Privileged owners and device nodes. dir
// itself is left as it is (made 0755 when missing).
//
// Nothing is written outside dir. Every path is opened relative to dir's
// descriptor with openat2's RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, and
// every leaf is made with an *at call that does not follow a symlink, so
// neither a symlink the image puts in dir nor one that was there before
// can lead a write elsewhere. What is in the way at a path is replaced; a
// folder that is not empty in the way of anything else is an error.
func Unpack(v *overlay.View, dir string, paths []string, opt UnpackOptions) (UnpackResult, error) {
	var res UnpackResult
	keep, err := selection(v, paths)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	u := &unpacker{v: v, root: root, dir: dir, opt: opt, links: map[[2]string]string{}}
	err = v.Walk(func(n *overlay.Node) error {
		if n.Path == "/" || !keep(n.Path) {
			return nil
		}
		if err := u.write(n, &res); err != nil {
			return fmt.Errorf("%s: %w", path.Join(dir, n.Path), err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, u.finishDirs()
}

// selection returns whether a canonical image path is to be unpacked: all
// of them, or the named paths, what lies below them and their parents.
func selection(v *overlay.View, paths []string) (func(string) bool, error) {
	if len(paths) == 0 {
		return func(string) bool { return true }, nil
	}
	var want []string
	for _, p := range paths {
		n, ok := v.Get(p)
		if !ok {
			return nil, fmt.Errorf("%s: not in the image (try 'fledge why %s' to see whether something removed it)", p, p)
		}
		want = append(want, n.Path) // through symlinked parents, where it is
	}
	return func(p string) bool {
		for _, w := range want {
			if p == w || strings.HasPrefix(p, w+"/") || strings.HasPrefix(w, p+"/") {
				return true
			}
		}
		return false
	}, nil
}

type unpacker struct {
	v    *overlay.View
	root int // dir, opened O_PATH
	dir  string
	opt  UnpackOptions
	// links maps a hard-link group (layer, LinkID, as the packer groups
	// them) to the first member written.
	links map[[2]string]string
	// dirs get their mode, owner and mtime last, deepest first, so their
	// children can be written and do not change their times.
	dirs []*overlay.Node
}

// parent opens the folder that holds image path p, below the root and
// through no symlink.
func (u *unpacker) parent(p string) (int, error) {
	rel := strings.TrimPrefix(path.Dir(p), "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(u.root, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

func (u *unpacker) write(n *overlay.Node, res *UnpackResult) error {
	if (n.Type == overlay.CharDev || n.Type == overlay.BlockDev) && !u.opt.Privileged {
		res.SkippedDevices = append(res.SkippedDevices, n.Path)
		return nil
	}
	pfd, err := u.parent(n.Path)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	name := path.Base(n.Path)
	if n.Type == overlay.Dir {
		u.dirs = append(u.dirs, n)
		return makeDir(pfd, name)
	}
	if err := clearPath(pfd, name); err != nil {
		return err
	}
	switch n.Type {
	case overlay.Regular:
		if done, err := u.link(pfd, name, n); done || err != nil {
			return err
		}
		return u.file(pfd, name, n)
	case overlay.Symlink:
		err = unix.Symlinkat(n.Linkname, pfd, name)
	default:
		// mknod of a FIFO or socket needs no privilege; devices were
		// skipped above for an unprivileged unpack.
		err = unix.Mknodat(pfd, name, n.UnixMode(), int(unix.Mkdev(n.Major, n.Minor)))
		if err == nil {
			// The node was just made here, so the leaf is no symlink;
			// the chmod undoes the umask.
			err = unix.Fchmodat(pfd, name, n.UnixMode()&0o7777, 0)
		}
	}
	if err != nil {
		return err
	}
	return u.meta(pfd, name, n)
}

// link makes n a hard link to the member of its group written before it,
// and records it as the first otherwise.
func (u *unpacker) link(pfd int, name string, n *overlay.Node) (bool, error) {
	if n.LinkID == "" {
		return false, nil
	}
	key := [2]string{n.Layer, n.LinkID}
	first, ok := u.links[key]
	if !ok {
		u.links[key] = n.Path
		return false, nil
	}
	ofd, err := u.parent(first)
	if err != nil {
		return true, err
	}
	defer unix.Close(ofd)
	return true, unix.Linkat(ofd, path.Base(first), pfd, name, 0)
}

func (u *unpacker) file(pfd int, name string, n *overlay.Node) error {
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	err = copyContent(f, n)
	if err == nil && u.opt.Privileged {
		err = f.Chown(n.UID, n.GID)
	}
	if err == nil {
		// After the chown, which clears setuid and setgid.
		err = unix.Fchmod(fd, n.UnixMode()&0o7777)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return u.times(pfd, name, n)
}

func copyContent(w io.Writer, n *overlay.Node) error {
	if n.Content == nil {
		if n.Size != 0 {
			return fmt.Errorf("entry of %d bytes has no content (layer %s)", n.Size, n.Layer)
		}
		return nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return fmt.Errorf("opening content from layer %s: %w", n.Layer, err)
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}

// meta sets the owner (when privileged) and the mtime of a leaf that is
// not a regular file, never following it.
func (u *unpacker) meta(pfd int, name string, n *overlay.Node) error {
	if u.opt.Privileged {
		if err := unix.Fchownat(pfd, name, n.UID, n.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return u.times(pfd, name, n)
}

func (u *unpacker) times(pfd int, name string, n *overlay.Node) error {
	atime := unix.Timespec{Nsec: unix.UTIME_OMIT}
	mtime := unix.NsecToTimespec(u.v.MTime(n).UnixNano())
	return unix.UtimesNanoAt(pfd, name, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// finishDirs gives the folders their owner, mode and mtime, deepest first:
// a read-only folder is made so only after its children are in it.
func (u *unpacker) finishDirs() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		n := u.dirs[i]
		if err := u.finishDir(n); err != nil {
			return fmt.Errorf("%s: %w", path.Join(u.dir, n.Path), err)
		}
	}
	return nil
}

func (u *unpacker) finishDir(n *overlay.Node) error {
	pfd, err := u.parent(n.Path)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	name := path.Base(n.Path)
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if u.opt.Privileged {
		err = unix.Fchown(fd, n.UID, n.GID)
	}
	if err == nil {
		err = unix.Fchmod(fd, n.UnixMode()&0o7777)
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return u.times(pfd, name, n)
}

// makeDir makes folder name in pfd, keeping a folder already there and
// replacing anything else.
func makeDir(pfd int, name string) error {
	err := unix.Mkdirat(pfd, name, 0o700)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := unix.Unlinkat(pfd, name, 0); err != nil {
		return err
	}
	return unix.Mkdirat(pfd, name, 0o700)
}

// clearPath removes what is at name in pfd, an empty folder included, so a
// new entry can be made there.
func clearPath(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return errors.New("a folder that is not empty is in the way; remove it or extract into an empty folder")
		}
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
