package packer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/volantvm/fledge/overlay"
)

// Repack writes to dst the artifact a as the view v shows it: a's own
// layer with edits over it. It is faithful to a where nothing changed:
//
//   - a segment (an archive, or a compressed stream of archives) with no
//     changed record is copied from a byte for byte, and so are the bytes
//     between segments; the segments before the first changed one keep
//     their offsets;
//   - a changed segment is decompressed and written again record by
//     record: the records of untouched paths are copied byte for byte
//     (header, name, data, padding: owner, mode, mtime, inode and device
//     numbers all stay), a record whose path changed is replaced in its
//     place by the view's, one whose path is gone is left out, and paths
//     that are new (or that no record names, as when the archive reaches
//     a file through a symlinked folder) go at the end of the last
//     segment, where the kernel unpacks them last;
//   - a changed segment keeps its compression, written with the settings
//     the kernel reads (gzip, zstd, xz with CRC32, the legacy lz4 frame,
//     none), unless compression names another; a bzip2, lzma or lzo
//     segment cannot be written and must be given one;
//   - a hard-link group of the archive with a changed member is written
//     again as a whole, from the view, so its names stay one inode.
//
// The output depends only on a and the view, so it is reproducible; an
// artifact with no edits comes out identical to a.
func Repack(ctx context.Context, a *Artifact, v *overlay.View, dst, compression string) (Result, error) {
	f, err := openRegular(a.path)
	if err != nil {
		return Result{}, fmt.Errorf("artifact %s: %w", a.path, err)
	}
	defer f.Close()
	r, err := planRepack(a, v, f, compression)
	if err != nil {
		return Result{}, fmt.Errorf("re-packing %s: %w", a.path, err)
	}
	return writeFile(dst, func(w io.Writer) error { return r.write(ctx, w) })
}

// action is what a re-pack does with one record of the artifact.
type action uint8

const (
	keep    action = iota // copy its bytes
	replace               // write the view's node in its place
	drop                  // leave it out
)

type repack struct {
	a    *Artifact
	v    *overlay.View
	file *os.File
	segs []Segment
	at   []int64 // where each segment starts in a's stream
	// seg, acts and nodes are per record of a.members: its segment, what
	// to do with it, and for replace the node to write.
	seg   []int
	acts  []action
	nodes []*overlay.Node
	// extra are written at the end of the last segment.
	extra       []*overlay.Node
	touched     []bool
	compression []string // per segment, where touched
}

func planRepack(a *Artifact, v *overlay.View, f *os.File, compression string) (*repack, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ms, segs, at, err := decodeAt(f, &sink{limit: streamLimit(fi.Size()), discard: true})
	if err != nil {
		return nil, err
	}
	if len(ms) != len(a.members) {
		return nil, fmt.Errorf("it holds %d records now, %d when it was opened: it changed meanwhile; run the command again", len(ms), len(a.members))
	}
	lower, err := (&overlay.Stack{Layers: []overlay.Layer{a}, Epoch: v.Epoch()}).View()
	if err != nil {
		return nil, err
	}
	r := &repack{
		a: a, v: v, file: f, segs: segs, at: at,
		seg:     make([]int, len(ms)),
		acts:    make([]action, len(ms)),
		nodes:   make([]*overlay.Node, len(ms)),
		touched: make([]bool, len(segs)),
	}
	changed, retimed, gone, err := compareViews(lower, v, a.Name())
	if err != nil {
		return nil, err
	}
	placed := map[string]bool{}
	paths := make([]string, len(a.members))
	s := 0
	for i, m := range a.members {
		for s < len(segs)-1 && m.start >= at[s]+segs[s].Bytes {
			s++
		}
		r.seg[i] = s
		p := recordPath(lower, m.Name)
		paths[i] = p
		switch {
		case gone[p]:
			r.acts[i], placed[p] = drop, true
		case changed[p] != nil:
			r.acts[i], r.nodes[i], placed[p] = replace, changed[p], true
		}
	}
	r.rewriteLinkGroups(lower, placed)
	for p := range gone {
		if !placed[p] {
			return nil, fmt.Errorf("%s is deleted, but no record of the archive is named %s (the archive makes it through a symlinked folder); it cannot be left out", p, p)
		}
	}
	err = v.Walk(func(n *overlay.Node) error {
		if changed[n.Path] != nil && !placed[n.Path] {
			r.extra = append(r.extra, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.markTouched()
	for i, p := range paths {
		// A folder whose time alone changed is written again only in a
		// segment written again anyway.
		if n := retimed[p]; n != nil && r.touched[r.seg[i]] {
			r.acts[i], r.nodes[i] = replace, n
		}
	}
	return r, r.compressions(compression)
}

// markTouched marks the segments that must be written again: those with
// a record to replace or leave out, and the last one when there are
// records to add.
func (r *repack) markTouched() {
	for i, act := range r.acts {
		if act != keep {
			r.touched[r.seg[i]] = true
		}
	}
	if len(r.extra) > 0 {
		r.touched[len(r.segs)-1] = true
	}
}

// compareViews finds the paths where v differs from lower, the view of
// the artifact alone: changed holds v's node at each path that is new or
// differs in anything the archive records, retimed v's node at each
// folder that differs in its time alone, gone each path v no longer has.
//
// A folder's time is the one its first record gives (see unpack), often
// in an early archive, and any edit below the folder changes it: were a
// new time reason enough to write a segment again, adding a file would
// rewrite the early microcode archive that holds the root folder. So a
// folder whose time alone changed takes the new time only where its
// records are written anyway.
func compareViews(lower, v *overlay.View, layer string) (changed, retimed map[string]*overlay.Node, gone map[string]bool, err error) {
	below := map[string]*overlay.Node{}
	if err := lower.Walk(func(n *overlay.Node) error { below[n.Path] = n; return nil }); err != nil {
		return nil, nil, nil, err
	}
	changed, retimed = map[string]*overlay.Node{}, map[string]*overlay.Node{}
	err = v.Walk(func(n *overlay.Node) error {
		l := below[n.Path]
		delete(below, n.Path)
		if l != nil && n.Layer == layer && l.Layer == layer {
			return nil // the artifact's own entry
		}
		same, err := sameRecord(l, n)
		switch {
		case err != nil:
			return err
		case !same:
			changed[n.Path] = n
		case lower.MTime(l).Unix() == v.MTime(n).Unix():
		case n.Type == overlay.Dir:
			retimed[n.Path] = n
		default:
			changed[n.Path] = n
		}
		return nil
	})
	gone = map[string]bool{}
	for p := range below {
		gone[p] = true
	}
	return changed, retimed, gone, err
}

// sameRecord reports whether n would be packed as l is (l may be nil),
// times aside: same type, mode, owner, target, device numbers and
// content.
func sameRecord(l, n *overlay.Node) (bool, error) {
	if l == nil || l.Type != n.Type || overlay.ModeChange(&l.Entry, &n.Entry) != "" {
		return false, nil
	}
	d, err := overlay.ContentChange(&l.Entry, &n.Entry)
	return d == "", err
}

// recordPath is the path of the image a record's name ends up at: its
// parents' symlinks followed as the kernel follows them.
func recordPath(lower *overlay.View, name string) string {
	p, err := overlay.CleanPath(name)
	if err != nil {
		return name
	}
	if n, ok := lower.Get(p); ok {
		return n.Path
	}
	return p
}

// rewriteLinkGroups makes a hard-link group of the archive (records with
// nlink > 1 and one inode within one archive, as the kernel matches them)
// written again whole when one of its records is: a record copied as it
// is would otherwise link to a name that is now something else, or lose
// the data the group kept in a record left out.
func (r *repack) rewriteLinkGroups(lower *overlay.View, placed map[string]bool) {
	groups := map[[2]any][]int{}
	for i, m := range r.a.members {
		if m.NLink >= 2 && m.Mode&sIFMT != sIFDIR {
			k := [2]any{m.archive, linkKey{m.DevMajor, m.DevMinor, m.Ino, m.Mode & sIFMT}}
			groups[k] = append(groups[k], i)
		}
	}
	for _, g := range groups {
		hit := false
		for _, i := range g {
			hit = hit || r.acts[i] != keep
		}
		if !hit {
			continue
		}
		for _, i := range g {
			p := recordPath(lower, r.a.members[i].Name)
			if n, ok := r.v.Get(p); ok {
				r.acts[i], r.nodes[i] = replace, n
			} else {
				r.acts[i] = drop
			}
			placed[p] = true
		}
	}
}

// compressions decides the compression of each touched segment.
func (r *repack) compressions(flag string) error {
	r.compression = make([]string, len(r.segs))
	for i, s := range r.segs {
		if !r.touched[i] {
			continue
		}
		c := s.Compression
		if flag != "" {
			c = flag
		}
		switch c {
		case Gzip, Zstd, Xz, LZ4, None:
		default:
			return fmt.Errorf("the segment at offset %d is %s, which fledge reads but cannot write, and it changed; choose one it writes with --compression (%s, %s, %s, %s or %s)", s.Offset, c, Gzip, Zstd, Xz, LZ4, None)
		}
		r.compression[i] = c
	}
	return nil
}

// write writes the image: the bytes before, between and after segments
// as they are, untouched segments as they are, touched ones again.
func (r *repack) write(ctx context.Context, w io.Writer) error {
	out := &countingWriter{w: w}
	var off int64
	for i, s := range r.segs {
		if err := r.copyFile(out, off, s.Offset-off); err != nil {
			return err
		}
		if s.Compression == None && out.n%4 != 0 {
			// An archive starts on a multiple of 4 bytes into the image,
			// which a changed segment before may have moved.
			if _, err := out.Write(zeros[:padLen(out.n, 4)]); err != nil {
				return err
			}
		}
		off = s.Offset + s.CompressedBytes
		var err error
		if r.touched[i] {
			err = r.segment(ctx, out, i)
		} else {
			err = r.copyFile(out, s.Offset, s.CompressedBytes)
		}
		if err != nil {
			return err
		}
	}
	fi, err := r.file.Stat()
	if err != nil {
		return err
	}
	return r.copyFile(out, off, fi.Size()-off)
}

func (r *repack) copyFile(w io.Writer, off, n int64) error {
	if _, err := io.Copy(w, io.NewSectionReader(r.file, off, n)); err != nil {
		return fmt.Errorf("copying bytes %d to %d of %s: %w", off, off+n, r.a.path, err)
	}
	return nil
}

// segment writes segment i again: its decompressed bytes, with the
// changed records replaced or left out and, in the last segment, the
// extra records after its last record.
func (r *repack) segment(ctx context.Context, w io.Writer, i int) error {
	s := r.segs[i]
	cw, err := compressor(w, r.compression[i])
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(cw, 1<<20)
	// Records start on 4-byte boundaries both here and in the copied
	// bytes, so the writer's padding is right without knowing the offset.
	aw := NewWriter(bw)
	recs := r.records(i)
	cur, end := r.at[i], r.at[i]+s.Bytes
	insert := cur
	last := i == len(r.segs)-1
	for j, m := range r.a.members {
		if r.seg[j] != i {
			continue
		}
		insert = recordEnd(m)
		if r.acts[j] == keep {
			continue
		}
		if err := r.copyStream(bw, cur, m.start); err != nil {
			return err
		}
		cur = recordEnd(m)
		if r.acts[j] == replace {
			if err := r.writeRecord(ctx, aw, m.Name, recs[j]); err != nil {
				return err
			}
		}
	}
	if last && len(r.extra) > 0 {
		if err := r.copyStream(bw, cur, insert); err != nil {
			return err
		}
		cur = insert
		for k, n := range r.extra {
			if err := r.writeRecord(ctx, aw, archiveName(n.Path), recs[-1-k]); err != nil {
				return err
			}
		}
	}
	if err := r.copyStream(bw, cur, end); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("finishing the %s segment at offset %d: %w", r.compression[i], s.Offset, err)
	}
	return nil
}

// records gives the records segment i writes from the view their inode
// numbers and link counts: a hard-link group of the view written within
// one archive gets one new inode number, unused in the segment, and its
// data once, with its last name, as GNU cpio writes it. Keys are record
// indexes, and -1-k for extra[k].
func (r *repack) records(i int) map[int]record {
	inos := inodes{}
	type emitted struct {
		key  int
		node *overlay.Node
		arch int
	}
	var list []emitted
	lastArch := 0
	for j, m := range r.a.members {
		if r.seg[j] != i {
			continue
		}
		inos[m.Ino] = true
		lastArch = m.archive
		if r.acts[j] == replace {
			list = append(list, emitted{j, r.nodes[j], m.archive})
		}
	}
	if i == len(r.segs)-1 {
		for k, n := range r.extra {
			list = append(list, emitted{-1 - k, n, lastArch})
		}
	}
	type group struct {
		arch        int
		layer, link string
	}
	members := map[group][]int{}
	recs := make(map[int]record, len(list))
	for _, e := range list {
		rec := record{node: e.node, nlink: 1, data: true}
		if e.node.Type == overlay.Dir {
			rec.nlink = 2
		}
		if e.node.Type == overlay.Regular && e.node.LinkID != "" {
			g := group{e.arch, e.node.Layer, e.node.LinkID}
			if first := members[g]; len(first) > 0 {
				rec.ino = recs[first[0]].ino
			}
			members[g] = append(members[g], e.key)
		}
		if rec.ino == 0 {
			rec.ino = inos.assign(e.node.Path)
		}
		recs[e.key] = rec
	}
	for _, g := range members {
		for k, key := range g {
			rec := recs[key]
			rec.nlink, rec.data = uint32(len(g)), k == len(g)-1
			recs[key] = rec
		}
	}
	return recs
}

// writeRecord writes the view's node of rec under the archive name name.
func (r *repack) writeRecord(ctx context.Context, aw *Writer, name string, rec record) error {
	if err := ctx.Err(); err != nil {
		return stopped(rec.node.Path, err)
	}
	h, c, err := recordOf(r.v, rec)
	if err != nil {
		return err
	}
	h.Name = name
	if c == nil {
		return aw.WriteRecord(h, nil)
	}
	return writeContent(aw, h, rec.node, c)
}

func (r *repack) copyStream(w io.Writer, from, to int64) error {
	if _, err := io.Copy(w, io.NewSectionReader(r.a.stream, from, to-from)); err != nil {
		return fmt.Errorf("copying the records of %s: %w", r.a.path, err)
	}
	return nil
}

// recordEnd is where the record m ends in the stream, its padding
// included.
func recordEnd(m member) int64 {
	end := m.off + m.Size
	return end + padLen(end, 4)
}
