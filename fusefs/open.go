package fusefs

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/volantvm/fledge/overlay"
)

// Open serves three kinds of file. Opens that may write copy the file up
// and get an editFile; so do read-only opens of an edit. Read-only opens of
// a lower layer's host file get a hostFile, which the kernel reads by
// passthrough; other lower content is read by the server.
//
// The passthrough trap: the kernel keeps one backing file per inode and
// hands it to every later passthrough open of that inode, so a writable
// passthrough open after a lower file was opened would write to the host.
// Writable handles therefore never offer passthrough, and the kernel
// refuses a non-passthrough open of an inode that still has a backing file
// rather than serving it from that file. A write open while a lower file is
// open by passthrough waits up to a second for the readers to close it
// (the kernel sends RELEASE only after close(2) has returned, so `cat f;
// echo x >> f` meets this), then fails with ETXTBSY ("text file busy", as
// writing a running binary does) before anything is copied up. A read-only
// open of an edit in that window gets the shared backing and reads the
// content from before the copy-up.
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
	busy := n.passthroughOpen()
	if writing && busy {
		busy = n.waitPassthroughClosed()
	}
	switch {
	case writing && n.fsys.edits == nil:
		return nil, 0, syscall.EROFS
	case writing && n.fsys.mayWrite(ctx) != 0:
		return nil, 0, syscall.EACCES
	case writing && busy:
		return nil, 0, syscall.ETXTBSY
	case writing || vn.Layer == overlay.EditsLayer:
		return n.openEdit(v, vn, acc, busy)
	}
	if host, ok := vn.Content.(overlay.HostFile); ok && n.fsys.passthrough.Load() {
		f, err := os.OpenFile(string(host), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return nil, 0, toErrno(err)
		}
		return n.newHostFile(f), 0, 0
	}
	c := vn.Content
	if c == nil {
		c = overlay.Bytes(nil)
	}
	r, err := c.Open()
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return &contentFile{r: r}, 0, 0
}

func (n *node) openEdit(v *overlay.View, vn *overlay.Node, acc int, busy bool) (fs.FileHandle, uint32, syscall.Errno) {
	f, err := n.fsys.edits.OpenFile(v, vn.Path, acc)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	if acc&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		n.fsys.changed()
	} else if busy {
		// The inode is in passthrough mode: only a passthrough open is
		// accepted, and it reads through the existing backing file.
		return n.newHostFile(f), 0, 0
	}
	return &editFile{f: f, fsys: n.fsys}, 0, 0
}

func (n *node) newHostFile(f *os.File) *hostFile {
	n.mu.Lock()
	n.passthrough++
	n.mu.Unlock()
	return &hostFile{f: f, node: n}
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
