package packer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// Options control how an archive is written.
type Options struct {
	// Compression is Gzip (the default when empty), Zstd, Xz, LZ4 or None.
	Compression string
	// CacheDir keeps the compressed pieces of gzip, zstd, xz and lz4
	// archives, so that a re-pack compresses only what changed
	// (piececache.go); empty means no cache. The bytes written are the
	// same with or without it.
	CacheDir string
	// CacheLimit is the size CacheDir is pruned to; 0 means the value of
	// FLEDGE_PACK_CACHE_SIZE, or DefaultCacheLimit.
	CacheLimit int64
	// WholeStream writes zstd, xz and lz4 as one stream, as the tools
	// do, instead of in pieces: a little smaller, never reused
	// (bench/repack.sh compares the two).
	WholeStream bool
	// Warn receives one line when CacheDir cannot be written (the pack
	// still succeeds, reading what the cache holds); nil drops it.
	Warn func(string)

	stats *packStats // when set, counts what the pack did (tests)
}

// Write packs the view as a compressed newc archive into w.
//
// The archive depends on nothing but the view: entries in v.Walk order
// (large files last, see plan), inode numbers from the names (host inode
// numbers would differ on every checkout), times from the view, no host
// device numbers.
func Write(ctx context.Context, v *overlay.View, w io.Writer, opts Options) error {
	if opts.Compression == "" {
		opts.Compression = Gzip
	}
	if codec := pieceCodecs[opts.Compression]; codec != nil && (!opts.WholeStream || opts.Compression == Gzip) {
		// The cache and its stat index are read while the records are
		// planned.
		start := time.Now()
		type opened struct {
			cache *pieceCache
			err   error
		}
		ch := make(chan opened, 1)
		go func() {
			c, err := openPieceCache(opts.CacheDir, opts.CacheLimit, opts.Warn)
			ch <- opened{c, err}
		}()
		recs, err := plan(v)
		o := <-ch
		if err != nil {
			return err
		}
		if o.err != nil {
			return o.err
		}
		return writePieces(ctx, v, recs, w, opts, codec, o.cache, start)
	}
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
			return stopped(r.node.Path, err)
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
//
// The order is v.Walk's, except that regular files of smallRecord bytes or
// more that are not hard-linked come last, in the same order among
// themselves: a large file added, removed or resized then moves no small
// record, which keeps every group of small records a re-pack takes from
// the piece cache (pieces.go) as it was. Each still follows its folder, so
// the kernel and cpio create the folder first. The order is the same for
// every compression, so a gzip artifact decompresses to the archive packed
// with none.
func plan(v *overlay.View) ([]record, error) {
	var recs, large []record
	inos := inodes{}
	type linkGroup struct {
		ino       uint64
		n, placed int
	}
	groups := map[[2]string]*linkGroup{}
	err := v.Walk(func(n *overlay.Node) error {
		r := record{node: n, nlink: 1, data: true}
		switch {
		case n.Type == overlay.Dir:
			r.nlink = 2
		case n.Type == overlay.Regular && n.LinkID != "":
			key := [2]string{n.Layer, n.LinkID}
			g := groups[key]
			if g == nil {
				g = &linkGroup{ino: inos.assign(n.Path)}
				groups[key] = g
			}
			r.ino = g.ino
			g.n++
		case n.Type == overlay.Regular && n.Size >= smallRecord:
			r.ino = inos.assign(n.Path)
			large = append(large, r)
			return nil
		}
		if r.ino == 0 {
			r.ino = inos.assign(n.Path)
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range recs {
		n := recs[i].node
		if n.Type == overlay.Regular && n.LinkID != "" {
			g := groups[[2]string{n.Layer, n.LinkID}]
			g.placed++
			recs[i].nlink, recs[i].data = uint32(g.n), g.placed == g.n
		}
	}
	return append(recs, large...), nil
}

func writeNode(aw *Writer, v *overlay.View, r record) error {
	h, c, err := recordOf(v, r)
	if err != nil || c == nil {
		if err == nil {
			err = aw.WriteRecord(h, nil)
		}
		return err
	}
	return writeContent(aw, h, r.node, c)
}

// recordOf is r's header, its Size still to be filled in, and the content
// its data comes from: nil when the record has no data.
func recordOf(v *overlay.View, r record) (Header, overlay.Content, error) {
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
		return h, overlay.Bytes(n.Linkname), nil
	case overlay.CharDev, overlay.BlockDev:
		h.RDevMajor, h.RDevMinor = n.Major, n.Minor
	case overlay.Regular:
		if n.Content == nil && n.Size != 0 {
			return h, nil, fmt.Errorf("%s: entry of %d bytes has no content (layer %s)", n.Path, n.Size, n.Layer)
		}
		if r.data {
			return h, n.Content, nil
		}
	}
	return h, nil, nil
}

// writeContent opens the content once and announces the size of that
// snapshot, not Entry.Size: a mapped host file may have changed since the
// view was built.
func writeContent(aw *Writer, h Header, n *overlay.Node, c overlay.Content) error {
	rd, err := c.Open()
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
