package edits

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// The mutations below take the merged view the caller is showing (the
// stack with this layer on top), because a change to a lower object first
// copies it up: the object, and every parent directory with the metadata
// the view gives it, so the edit changes nothing but what was asked.

// CopyUp makes the object at guest path p, as v shows it, exist in the
// layer. It does nothing if the layer holds p already.
func (e *Edits) CopyUp(v *overlay.View, p string) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(p)
	return e.copyUp(v, p)
}

// Create adds a new object described by ent at ent.Path. Its mtime is
// ent.MTime, or now when that is zero. A directory made where a lower one
// was deleted is opaque, so the old contents do not come back.
func (e *Edits) Create(v *overlay.View, ent overlay.Entry) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(ent.Path)
	return e.create(v, ent)
}

// create is Create while the change is begun.
func (e *Edits) create(v *overlay.View, ent overlay.Entry) error {
	if _, ok := v.Get(ent.Path); ok {
		return fmt.Errorf("create %s: %w", ent.Path, syscall.EEXIST)
	}
	if ent.Type == overlay.CharDev && ent.Major == 0 && ent.Minor == 0 {
		return fmt.Errorf("create %s: a character device 0,0 is how the edits record a deletion: %w", ent.Path, syscall.EPERM)
	}
	d, name, err := e.parentOf(v, ent.Path)
	if err != nil {
		return err
	}
	defer d.close()
	hadWhiteout, err := e.isWhiteout(d, name)
	if err != nil {
		return err
	}
	if !hadWhiteout {
		if err := d.remove(name); err != nil {
			return err
		}
	}
	mtime := ent.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	// The new object replaces the whiteout in one rename: a create that
	// fails leaves the deleted lower object deleted instead of bringing it
	// back, and a directory is opaque from its first moment.
	if err := e.materialize(d, name, &ent, timespec(mtime), ent.Type == overlay.Dir && hadWhiteout); err != nil {
		return fmt.Errorf("create %s: %w", ent.Path, err)
	}
	return e.clearLegacy(d, name)
}

// Remove deletes p from the merged view: the layer's copy goes, and a
// whiteout hides what lower layers have there.
func (e *Edits) Remove(v *overlay.View, p string) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(p)
	n, ok := v.Get(p)
	if !ok {
		return fmt.Errorf("remove %s: %w", p, syscall.ENOENT)
	}
	d, name, err := e.parentOf(v, p)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.remove(name); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	if inLower(n) {
		return e.whiteout(d, name)
	}
	return nil
}

// inLower reports whether a layer below the edits has something at n's path.
func inLower(n *overlay.Node) bool {
	return n.Layer != LayerName || len(n.Shadowed) > 0
}

// Rename moves oldp to newp, replacing what newp held. A directory moves
// with its whole subtree copied up and is made opaque at its new place, so
// its contents are exactly what it carried.
func (e *Edits) Rename(v *overlay.View, oldp, newp string) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(oldp, newp)
	n, ok := v.Get(oldp)
	if !ok {
		return fmt.Errorf("rename %s: %w", oldp, syscall.ENOENT)
	}
	if err := e.copyUpTree(v, n); err != nil {
		return err
	}
	return e.twoPlaces(v, oldp, newp, func(od, nd dirFD, oldName, newName string) error {
		if n.Type == overlay.Dir {
			// Opaque before it moves: at its new place it never shows
			// what a lower layer has there.
			if err := od.markOpaque(oldName); err != nil {
				return err
			}
		}
		// A whiteout at newp is replaced in the rename itself, so a failed
		// rename leaves what it hid deleted. A directory cannot replace a
		// device node: it swaps places with the whiteout, which then
		// stands at oldp.
		st, ok, err := nd.stat(newName)
		if err != nil {
			return err
		}
		wh := ok && isWhiteout(&st)
		flags := uint(0)
		switch {
		case wh && n.Type == overlay.Dir:
			flags = unix.RENAME_EXCHANGE
		case !wh:
			if err := nd.remove(newName); err != nil {
				return err
			}
		}
		if err := unix.Renameat2(int(od), oldName, int(nd), newName, flags); err != nil {
			return fmt.Errorf("rename %s to %s: %w", oldp, newp, err)
		}
		if flags == unix.RENAME_EXCHANGE {
			if inLower(n) {
				return nil
			}
			return od.remove(oldName)
		}
		if inLower(n) {
			return e.whiteout(od, oldName)
		}
		return nil
	})
}

// Link makes newp a hard link to oldp, both in the layer.
func (e *Edits) Link(v *overlay.View, oldp, newp string) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(oldp, newp)
	if _, ok := v.Get(newp); ok {
		return fmt.Errorf("link %s: %w", newp, syscall.EEXIST)
	}
	if err := e.copyUp(v, oldp); err != nil {
		return err
	}
	return e.twoPlaces(v, oldp, newp, func(od, nd dirFD, oldName, newName string) error {
		// Linked under a temporary name and renamed over a whiteout
		// there, if any.
		tmp := tempName()
		if err := unix.Linkat(int(od), oldName, int(nd), tmp, 0); err != nil {
			return fmt.Errorf("link %s to %s: %w", newp, oldp, err)
		}
		return nd.place(tmp, newName)
	})
}

// twoPlaces opens the parents of oldp and newp, runs fn on them and then
// clears a whiteout at newp (the new object replaces what it hid). The
// whiteout goes last, so a failed fn leaves what it hid deleted.
func (e *Edits) twoPlaces(v *overlay.View, oldp, newp string, fn func(od, nd dirFD, oldName, newName string) error) error {
	od, oldName, err := e.parentOf(v, oldp)
	if err != nil {
		return err
	}
	defer od.close()
	nd, newName, err := e.parentOf(v, newp)
	if err != nil {
		return err
	}
	defer nd.close()
	if err := fn(od, nd, oldName, newName); err != nil {
		return err
	}
	return e.clearLegacy(nd, newName)
}

// SetAttr copies p up and changes its metadata.
func (e *Edits) SetAttr(v *overlay.View, p string, a Attr) error {
	release, err := e.begin()
	if err != nil {
		return err
	}
	defer release()
	defer e.touchedAttr(p)
	d, name, err := e.copiedUp(v, p)
	if err != nil {
		return err
	}
	defer d.close()
	if err := e.setAttr(d, name, a); err != nil {
		return fmt.Errorf("setattr %s: %w", p, err)
	}
	return nil
}

// SetAttrHeld is SetAttr for a regular file the layer holds under one name
// only, the file tar x or cp -r just made: it needs no view, since nothing
// is copied up, and it returns the file's lstat afterwards. ok is false,
// and nothing is done, for anything else.
func (e *Edits) SetAttrHeld(p string, a Attr) (st unix.Stat_t, ok bool, err error) {
	release, err := e.begin()
	if err != nil {
		return st, true, err
	}
	defer release()
	if !e.holdsFile(p) {
		return st, false, nil
	}
	d, name, err := e.holder(p)
	if err != nil {
		return st, true, err
	}
	defer d.close()
	err = e.setAttrOf(d, name, a, false)
	if err == nil {
		st, _, err = e.lstat(d, name)
	}
	if err != nil {
		e.touchedAttr(p)
		return st, true, fmt.Errorf("setattr %s: %w", p, err)
	}
	e.touchedFile(d, name, p, &st, false)
	return st, true, nil
}

// StatHeld returns the lstat of p if the layer holds it as a regular file
// under one name; ok is false for anything else, and if the file went away.
func (e *Edits) StatHeld(p string) (st unix.Stat_t, ok bool) {
	if !e.holdsFile(p) {
		return st, false
	}
	st, err := e.Stat(p)
	return st, err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// holdsFile reports whether the layer's tree has a regular file at p with
// no other name.
func (e *Edits) holdsFile(p string) bool {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.tr == nil {
		return false
	}
	n := e.tr.node(p, false)
	return n != nil && n.hasObj && n.obj.Type == overlay.Regular && n.obj.LinkID == ""
}

// OpenFile opens the layer's copy of the regular file p. Writing opens copy
// p up first, so the caller writes to the edit, never to a lower layer.
func (e *Edits) OpenFile(v *overlay.View, p string, flag int) (*os.File, error) {
	release, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer release()
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_TRUNC) != 0 {
		// Reading opens what the layer holds already and changes nothing.
		defer e.touched(p)
		if err := e.copyUp(v, p); err != nil {
			return nil, err
		}
	}
	d, name, err := e.parentOf(v, p)
	if err != nil {
		return nil, err
	}
	defer d.close()
	f, err := d.openFile(name, flag&^(os.O_CREATE|os.O_EXCL), 0)
	if err != nil {
		return nil, err
	}
	if _, err := overlay.StatRegular(f, p); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// begin starts a change of the layer's tree. Changes run one at a time so
// two copy-ups of one file cannot race (the second would replace a copy the
// first caller may already be writing to); writes to open files do not
// wait for them.
func (e *Edits) begin() (func(), error) {
	release, err := e.Hold()
	if err != nil {
		return nil, err
	}
	e.op.Lock()
	return func() {
		e.op.Unlock()
		release()
	}, nil
}

func (e *Edits) copyUp(v *overlay.View, p string) error {
	d, _, err := e.copiedUp(v, p)
	d.close()
	return err
}

// copiedUp is copyUp that returns the folder holding p, open, and p's
// name in it, as holder does: a change after the copy-up opens it once.
func (e *Edits) copiedUp(v *overlay.View, p string) (dirFD, string, error) {
	if p == "/" {
		if err := e.ensureRoot(v); err != nil {
			return -1, "", err
		}
		return e.holder(p)
	}
	d, name, err := e.parentOf(v, p)
	if err != nil {
		return -1, "", err
	}
	_, ok, err := d.stat(name)
	if err == nil && !ok {
		n, found := v.Get(p)
		if !found {
			err = syscall.ENOENT
		} else {
			err = e.materialize(d, name, &n.Entry, timespec(v.MTime(n)), false)
		}
		if err != nil {
			err = fmt.Errorf("copy-up %s: %w", p, err)
		}
	}
	if err != nil {
		d.close()
		return -1, "", err
	}
	return d, name, nil
}

func (e *Edits) copyUpTree(v *overlay.View, n *overlay.Node) error {
	if err := e.copyUp(v, n.Path); err != nil {
		return err
	}
	if n.Type != overlay.Dir {
		return nil
	}
	for _, k := range v.Children(n) {
		if err := e.copyUpTree(v, k); err != nil {
			return err
		}
	}
	return nil
}

// parentOf opens the layer's folder for p's parent, copying it up as
// needed, and returns it with p's last component.
func (e *Edits) parentOf(v *overlay.View, p string) (dirFD, string, error) {
	if p == "/" {
		return -1, "", fmt.Errorf("the root has no parent: %w", syscall.EINVAL)
	}
	parts, err := e.splitGuest(p)
	if err != nil {
		return -1, "", err
	}
	d, err := e.ensureDir(v, parts[:len(parts)-1])
	return d, parts[len(parts)-1], err
}

// ensureDir opens the layer's folder for the guest directory made of
// parts, creating every missing level as a copy of what v shows there.
func (e *Edits) ensureDir(v *overlay.View, parts []string) (dirFD, error) {
	// A folder kept open was there when opened, and the layer's folder
	// with it; one gone since is dropped with the rest (see Reload).
	cur := "/" + strings.Join(parts, "/")
	if d, ok := e.dirs.get(cur); ok {
		return d, nil
	}
	if err := e.ensureRoot(v); err != nil {
		return -1, err
	}
	d, err := e.openRoot()
	if err != nil {
		return -1, err
	}
	cur = "/"
	for _, c := range parts {
		cur = path.Join(cur, c)
		_, ok, err := d.stat(c)
		if err == nil && !ok {
			n, found := v.Get(cur)
			if !found || n.Type != overlay.Dir {
				d.close()
				return -1, fmt.Errorf("copy-up %s: not a directory in the view: %w", cur, syscall.ENOTDIR)
			}
			err = e.materialize(d, c, &n.Entry, timespec(v.MTime(n)), false)
		}
		var next dirFD
		if err == nil {
			next, err = d.sub(c)
		}
		d.close()
		if err != nil {
			return -1, fmt.Errorf("edits %s: %w", cur, err)
		}
		d = next
	}
	e.dirs.put(cur, d)
	return d, nil
}

// ensureRoot creates the layer's folder on the first change, with the
// metadata of the image root, since the folder stands for it.
func (e *Edits) ensureRoot(v *overlay.View) error {
	if _, err := os.Lstat(e.dir); err == nil || !os.IsNotExist(err) {
		return err
	}
	if err := os.MkdirAll(path.Dir(e.dir), 0o755); err != nil {
		return fmt.Errorf("edits: %w", err)
	}
	if err := os.Mkdir(e.dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("edits: %w", err)
	}
	// Made now, the folder is of the second format.
	if err := os.WriteFile(filepath.Join(e.dir, formatMarker), nil, 0o644); err != nil {
		return fmt.Errorf("edits: %w", err)
	}
	e.format2.Store(true)
	root := v.Root()
	pd, err := openHostDir(path.Dir(e.dir))
	if err != nil {
		return err
	}
	defer pd.close()
	return e.setMeta(pd, path.Base(e.dir), &root.Entry, timespec(v.MTime(root)))
}

func openHostDir(dir string) (dirFD, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return dirFD(fd), nil
}

var tmpSeq atomic.Uint64

// tempName is a name for an object being made, which a read of the layer
// skips (a crash may leave it behind). It is short whatever name it
// becomes, so a name of NAME_MAX bytes needs no longer one.
func tempName() string {
	return fmt.Sprintf("%stmp.%d.%d", metaPrefix, os.Getpid(), tmpSeq.Add(1))
}

// materialize creates name as described by ent, opaque if asked. It is
// made under a temporary name and renamed into place, replacing a whiteout
// at name, so a crash never leaves a half-made object that looks like an
// edit, nor an instant where what name hid shows again.
func (e *Edits) materialize(d dirFD, name string, ent *overlay.Entry, mtime unix.Timespec, opaque bool) error {
	tmp := tempName()
	err := e.makeObject(d, tmp, ent)
	if err == nil && opaque {
		err = d.markOpaque(tmp)
	}
	if err == nil {
		err = e.setMeta(d, tmp, ent, mtime)
	}
	if err == nil {
		err = d.place(tmp, name)
	}
	if err != nil {
		_ = d.remove(tmp)
	}
	return err
}

// place renames tmp to name, which must be free or a whiteout. A directory
// cannot be renamed over a device node, so it is exchanged with the
// whiteout, which then goes under the temporary name.
func (d dirFD) place(tmp, name string) error {
	err := unix.Renameat2(int(d), tmp, int(d), name, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if st, ok, err := d.stat(name); err != nil || !ok || !isWhiteout(&st) {
		if err == nil {
			err = unix.EEXIST
		}
		return err
	}
	if err := unix.Renameat2(int(d), tmp, int(d), name, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	return unix.Unlinkat(int(d), tmp, 0)
}

// isWhiteout reports whether name in d is deleted: a whiteout device, or
// an old-style ".wh.NAME" file.
func (e *Edits) isWhiteout(d dirFD, name string) (bool, error) {
	st, ok, err := d.stat(name)
	if err != nil || ok {
		return ok && isWhiteout(&st), err
	}
	if !e.oldWhiteout(name) {
		return false, nil
	}
	_, ok, err = d.stat(whiteoutPrefix + name)
	return ok, err
}

// clearLegacy removes an old-style whiteout of name, now that name holds
// an object.
func (e *Edits) clearLegacy(d dirFD, name string) error {
	if !e.oldWhiteout(name) {
		return nil
	}
	return d.remove(whiteoutPrefix + name)
}

func (d dirFD) writeContent(name string, c overlay.Content) error {
	f, err := d.openFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if c != nil {
		var r overlay.Reader
		if r, err = c.Open(); err == nil {
			_, err = io.Copy(f, r)
			r.Close()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// whiteout records the deletion of name, which must be free: a character
// device 0/0, the overlayfs whiteout.
func (e *Edits) whiteout(d dirFD, name string) error {
	if err := d.mkWhiteout(name); err != nil {
		return fmt.Errorf("whiteout %s: %w", name, err)
	}
	return e.clearLegacy(d, name)
}

func (d dirFD) markOpaque(dir string) error {
	sub, err := d.sub(dir)
	if err != nil {
		return err
	}
	defer sub.close()
	f, err := sub.openFile(opaqueMarker, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("mark %s opaque: %w", dir, err)
	}
	return f.Close()
}
