package packer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// Options control how an archive is written.
type Options struct {
	// Compression is Gzip (the default when empty), Zstd, Xz, LZ4 or None.
	Compression string
}

// Write packs the view as a compressed newc archive into w.
//
// The archive depends on nothing but the view: entries in v.Walk order,
// inode numbers counted from 1 in that order (host inode numbers would
// differ on every checkout), times from the view, no host device numbers.
func Write(ctx context.Context, v *overlay.View, w io.Writer, opts Options) error {
	recs, err := plan(v)
	if err != nil {
		return err
	}
	cw, err := compressor(w, opts.Compression)
	if err != nil {
		return err
	}
	err = writeRecords(ctx, v, recs, cw)
	if cerr := cw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("finishing compression: %w", cerr)
	}
	return err
}

func writeRecords(ctx context.Context, v *overlay.View, recs []record, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	aw := NewWriter(bw)
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("packing stopped at %s: %w", r.node.Path, err)
		}
		if err := writeNode(aw, v, r); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}

// record is a node with the inode facts decided for it.
type record struct {
	node  *overlay.Node
	ino   uint64
	nlink uint32
	// data is false for the hard-link members that precede the last one:
	// GNU cpio stores a link group's data once, with its last member, and
	// the kernel and cpio both restore the others as links to it.
	data bool
}

// plan lists the records in packing order and groups hard links. A group is
// the regular files of one layer sharing a LinkID; members that a higher
// layer replaced carry that layer's name and fall out of the group.
func plan(v *overlay.View) ([]record, error) {
	var recs []record
	var inodes uint64
	groups := map[[2]string][]int{}
	err := v.Walk(func(n *overlay.Node) error {
		r := record{node: n, nlink: 1, data: true}
		if n.Type == overlay.Dir {
			r.nlink = 2
		}
		if n.Type == overlay.Regular && n.LinkID != "" {
			key := [2]string{n.Layer, n.LinkID}
			if g := groups[key]; len(g) > 0 {
				r.ino = recs[g[0]].ino
			}
			groups[key] = append(groups[key], len(recs))
		}
		if r.ino == 0 {
			inodes++
			r.ino = inodes
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		for i, at := range g {
			recs[at].nlink = uint32(len(g))
			recs[at].data = i == len(g)-1
		}
	}
	return recs, nil
}

func writeNode(aw *Writer, v *overlay.View, r record) error {
	n := r.node
	h := Header{
		Name:  archiveName(n.Path),
		Ino:   r.ino,
		Mode:  n.UnixMode(),
		UID:   n.UID,
		GID:   n.GID,
		NLink: r.nlink,
		MTime: v.MTime(n).Unix(),
	}
	switch n.Type {
	case overlay.Symlink:
		h.Size = int64(len(n.Linkname))
		return aw.WriteRecord(h, strings.NewReader(n.Linkname))
	case overlay.CharDev, overlay.BlockDev:
		h.RDevMajor, h.RDevMinor = n.Major, n.Minor
	case overlay.Regular:
		if r.data {
			return writeContent(aw, h, n)
		}
	}
	return aw.WriteRecord(h, nil)
}

// writeContent opens the content once and announces the size of that
// snapshot, not Entry.Size: a mapped host file may have changed since the
// view was built.
func writeContent(aw *Writer, h Header, n *overlay.Node) error {
	if n.Content == nil {
		if n.Size != 0 {
			return fmt.Errorf("%s: entry of %d bytes has no content (layer %s)", n.Path, n.Size, n.Layer)
		}
		return aw.WriteRecord(h, nil)
	}
	rd, err := n.Content.Open()
	if err != nil {
		return fmt.Errorf("%s: opening content from layer %s: %w", n.Path, n.Layer, err)
	}
	defer rd.Close()
	h.Size = rd.Size()
	return aw.WriteRecord(h, rd)
}

// archiveName is the name an archive member gets: relative, as the kernel
// and GNU cpio expect, with the root as ".".
func archiveName(p string) string {
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}
