package fusefs

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// Open serves three kinds of file. Opens that may write copy the file up,
// and opens of an edit, reach the edits layer's host file: by passthrough
// where the kernel offers it, so reads and writes never pass through the
// server. Read-only opens of a lower layer's host file get a hostFile,
// also read by passthrough; other lower content is read by the server.
//
// The passthrough trap: a node keeps one backing file while it has
// passthrough handles open (go-fuse registers the first handle's file and
// hands it to every later passthrough open of the node), so a writable
// passthrough open after a lower file was opened would write to the host.
// It cannot happen to a node whose every passthrough handle was of one
// edit: that file is the backing, and it is the edit itself. So an edit is
// opened by passthrough only on a node that never had a passthrough handle
// of another file (files made through the mount, as tar x and cp make
// them, and edits not opened before their copy-up); on any other node it
// is served through the server, as it was before the copy-up's readers
// were gone. A write open while a lower file is open by passthrough
// waits up to a second for the readers to close it (the kernel sends
// RELEASE only after close(2) has returned, so `cat f; echo x >> f` meets
// this), then fails with ETXTBSY ("text file busy", as writing a running
// binary does) before anything is copied up. A read-only open of an edit
// in that window shares the old backing and reads the content from before
// the copy-up. The kernel refuses passthrough on a node it serves through
// the server (and the reverse), so while such handles are open an edit is
// served through the server too.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	n.openMu.Lock()
	defer n.openMu.Unlock()
	v, vn, errno := n.lookup()
	if errno != 0 {
		return nil, 0, errno
	}
	if vn.Type != overlay.Regular {
		return nil, 0, syscall.EINVAL
	}
	acc := int(flags) & (syscall.O_ACCMODE | syscall.O_TRUNC)
	writing := acc&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0
	switch {
	case writing && n.fsys.edits == nil:
		return nil, 0, syscall.EROFS
	case writing && n.fsys.mayWrite(ctx) != 0:
		return nil, 0, syscall.EACCES
	case writing && vn.Layer != edits.LayerName && n.passthroughOpen() && n.waitPassthroughClosed():
		return nil, 0, syscall.ETXTBSY
	case writing || vn.Layer == edits.LayerName:
		return n.openEdit(ctx, v, vn, acc, writing)
	}
	if host, ok := vn.Content.(overlay.HostFile); ok && n.fsys.passthrough.Load() {
		f, _, err := host.OpenFile()
		if err != nil {
			return nil, 0, toErrno(err)
		}
		id, _, err := idOf(f)
		if err != nil {
			f.Close()
			return nil, 0, toErrno(err)
		}
		n.mu.Lock()
		n.addPassthrough(id)
		n.mu.Unlock()
		return &hostFile{f: f, node: n}, 0, 0
	}
	c := vn.Content
	if c == nil {
		c = overlay.Bytes(nil)
	}
	r, err := c.Open()
	if err != nil {
		return nil, 0, toErrno(err)
	}
	if !n.fsys.passthrough.Load() {
		return &contentFile{r: r}, 0, 0
	}
	n.mu.Lock()
	n.cached++
	n.mu.Unlock()
	return &cachedContent{contentFile: &contentFile{r: r}, node: n}, 0, 0
}

func (n *node) openEdit(ctx context.Context, v *overlay.View, vn *overlay.Node, acc int, writing bool) (fs.FileHandle, uint32, syscall.Errno) {
	f, err := n.fsys.edits.OpenFile(v, vn.Path, acc)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	if writing {
		n.fsys.changed()
	}
	h, errno := n.editHandle(ctx, f, writing)
	if errno != 0 {
		f.Close()
	}
	return h, 0, errno
}

// editHandle is the handle of f, an open edit of the node (see Open).
// A setuid or setgid file that a caller without CAP_FSETID opens for
// writing is served through fledge, which clears the bits at its first
// write (see editFile.Write): the kernel would not, writing by passthrough.
func (n *node) editHandle(ctx context.Context, f *os.File, writing bool) (fs.FileHandle, syscall.Errno) {
	ef := &editFile{f: f, fsys: n.fsys, node: n}
	if !n.fsys.passthrough.Load() {
		return ef, 0
	}
	id, mode, err := idOf(f)
	if err != nil {
		return nil, toErrno(err)
	}
	serve := writing && mode&(unix.S_ISUID|unix.S_ISGID) != 0 && n.fsys.unprivileged(ctx)
	deadline := time.Now().Add(releaseWait)
	for {
		n.mu.Lock()
		switch {
		case n.cached > 0:
			n.cached++
			n.mu.Unlock()
			return &cachedEdit{editFile: ef, node: n}, 0
		case !serve && (n.backing == fileID{} || n.backing == id && !id.weak || n.passthrough > 0 && !writing):
			// A reader of another backing reads what that file holds.
			n.addPassthrough(id)
			n.mu.Unlock()
			return &passEdit{editFile: ef, node: n}, 0
		case n.passthrough == 0:
			n.cached++
			n.mu.Unlock()
			return &cachedEdit{editFile: ef, node: n}, 0
		}
		n.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, syscall.ETXTBSY
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addPassthrough counts a passthrough handle of the file id; n.mu is held.
// The first names the node's backing for good: go-fuse registers it and
// drops it only after RELEASE has been answered, so whether another file
// may back the node later cannot be known, and it never does.
func (n *node) addPassthrough(id fileID) {
	if n.backing == (fileID{}) {
		n.backing = id
	}
	n.passthrough++
}

// fileID names a host file: the one a node's passthrough handles share.
// An inode number is reused once its file is deleted and closed (a reset
// edit, copied up again, may get the number of the one before), so the
// birth time is part of the name; where the file system keeps none, the
// id is weak and never taken for the node's backing (see editHandle).
type fileID struct {
	dev, ino uint64
	born     unix.StatxTimestamp
	weak     bool
}

// idOf returns the id of f, and its mode.
func idOf(f *os.File) (fileID, uint32, error) {
	var sx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME|unix.STATX_MODE, &sx); err != nil {
		return fileID{}, 0, err
	}
	return fileID{
		dev:  unix.Mkdev(sx.Dev_major, sx.Dev_minor),
		ino:  sx.Ino,
		born: sx.Btime,
		weak: sx.Mask&unix.STATX_BTIME == 0,
	}, uint32(sx.Mode), nil
}

// passEdit is an edit the kernel reads and writes by passthrough; the
// editFile methods serve it if the kernel does not take the descriptor.
type passEdit struct {
	*editFile
	node *node
}

var _ = (fs.FilePassthroughFder)((*passEdit)(nil))

func (p *passEdit) PassthroughFd() (int, bool) { return int(p.f.Fd()), true }

func (p *passEdit) Release(ctx context.Context) syscall.Errno {
	p.node.released(&p.node.passthrough)
	return p.editFile.Release(ctx)
}

// cachedEdit is an edit served through the server while passthrough is
// on, counted so no passthrough open is offered beside it.
type cachedEdit struct {
	*editFile
	node *node
}

func (c *cachedEdit) Release(ctx context.Context) syscall.Errno {
	c.node.released(&c.node.cached)
	return c.editFile.Release(ctx)
}

// cachedContent is lower content served through the server while
// passthrough is on, counted like cachedEdit.
type cachedContent struct {
	*contentFile
	node *node
}

func (c *cachedContent) Release(ctx context.Context) syscall.Errno {
	c.node.released(&c.node.cached)
	return c.contentFile.Release(ctx)
}

// released counts down one of the node's open handles.
func (n *node) released(count *int) {
	n.mu.Lock()
	*count--
	n.mu.Unlock()
}

// waitPassthroughClosed waits up to releaseWait for the node's passthrough
// handles to be released and reports whether some are still open.
func (n *node) waitPassthroughClosed() bool {
	deadline := time.Now().Add(releaseWait)
	for n.passthroughOpen() {
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

const releaseWait = time.Second

func (n *node) passthroughOpen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.passthrough > 0
}
