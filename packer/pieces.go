package packer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/volantvm/fledge/overlay"
)

// A gzip artifact is one gzip member whose deflate stream is the
// concatenation of pieces, each compressed on its own: a piece starts with
// an empty window, ends with a sync flush (so on a byte boundary, with no
// final block), and refers to nothing before it. A piece's compressed bytes
// therefore depend only on its own uncompressed bytes, which is what lets a
// re-pack take unchanged pieces from the cache (piececache.go) and
// compress only the rest. The layout is a function of the records alone,
// never of the cache, so a warm pack and a cold one give the same bytes.
//
// Layout, in archive order (plan puts the large files last, pack.go):
//   - records of small files, folders and the like are grouped. A group
//     ends after a record once it holds groupMin bytes and the record's
//     name hash is 0 modulo groupCut, or once it holds groupMax bytes.
//     Ending on names, not on a running size, keeps the groups after an
//     added or removed file as they were;
//   - a file of smallRecord bytes or more is pieces of its own: its
//     header and data, one piece per chunkSize bytes, and padding;
//   - the trailer and the padding to 512 bytes are the last piece.
//
// Where each piece is a whole archive (zstd, xz: piececodecs.go), the
// groups are larger and so is the bound for a file of its own, so files
// between the two are grouped at the end; a file over the bound waits for
// the group open when it comes to end, so that it changes no group either.
//
// The sizes were chosen on the Go source tree (bench/repack.sh): smaller
// groups make a piece restart with an empty window more often, which
// costs size and time (16 KiB records and 64 KiB groups were 4.9% larger
// than `gzip -9`, these are 1.2%); larger ones make a re-pack compress
// more around a change. A large file's data is cut finer than a group,
// so that the cores share the compression of a changed one.
const (
	smallRecord = 128 << 10
	chunkSize   = 256 << 10
	groupMin    = 512 << 10
	groupMax    = 2 << 20
	groupCut    = 4
)

// piece is a run of archive bytes compressed as one unit.
type piece struct {
	spans []span
	n     int64 // uncompressed length
}

// span is literal bytes (headers, names, symlink targets, padding) or one
// chunk of a file's data.
type span struct {
	lit   []byte
	src   *source
	chunk int
	// record is the image path of the record whose header lit is.
	record string
}

// source is the data of one regular file, in chunks of chunkSize bytes.
type source struct {
	path    string // in the image, for messages
	layer   string
	content overlay.Content
	host    string // for a host file: its path, whose stat the index keys
	stat    fileStat
	size    int64
	// sums are the sha256 of each chunk, known from the stat index or
	// filled in by the one worker that reads the chunk.
	sums  [][32]byte
	known []bool
	// fromIndex says the sums came from the index; changed says the file
	// was seen changing while it was read, so its sums must not be
	// recorded against the stat taken before.
	fromIndex bool
	changed   atomic.Bool
}

func (s *source) chunkLen(i int) int64 {
	return min(chunkSize, s.size-int64(i)*chunkSize)
}

// layout cuts the records into pieces and names the sources of their data.
// With archives, each piece is a whole archive (piececodecs.go): a large
// record is one piece, every piece ends with a trailer, and the members of
// hard-link groups share the last piece.
func layout(ctx context.Context, v *overlay.View, recs []record, idx *statIndex, archives bool) ([]*piece, []*source, error) {
	g := groupSizes{smallRecord, groupMin, groupMax}
	if archives {
		g = archiveGroups
	}
	var (
		pieces []*piece
		srcs   []*source
		group  *piece
		links  *piece
		// large holds the pieces of large records that wait for the
		// open group to end.
		large []*piece
		off   int64
	)
	add := func(p *piece) {
		if archives {
			p.lit(archiveEnd)
		}
		pieces = append(pieces, p)
		off += p.n
	}
	closeGroup := func() {
		if group != nil {
			add(group)
			group = nil
		}
		for _, p := range large {
			add(p)
		}
		large = large[:0]
	}
	preps, err := prepare(ctx, v, recs, idx)
	if err != nil {
		return nil, nil, err
	}
	for i, r := range recs {
		hdr, src, size := preps[i].hdr, preps[i].src, preps[i].size
		pad := zeros[:padLen(size, 4)]
		if archives && r.nlink > 1 && r.node.Type == overlay.Regular {
			if links == nil {
				links = &piece{}
			}
			srcs = links.record(hdr, r.node.Path, src, pad, srcs)
			continue
		}
		if size >= g.small {
			srcs = append(srcs, src)
			p := &piece{}
			p.header(hdr, r.node.Path)
			for c := range src.sums {
				if c > 0 && !archives {
					large = append(large, p)
					p = &piece{}
				}
				p.data(src, c)
			}
			p.lit(pad)
			large = append(large, p)
			if !archives || group == nil {
				closeGroup()
			}
			continue
		}
		if group == nil {
			group = &piece{}
		}
		srcs = group.record(hdr, r.node.Path, src, pad, srcs)
		if group.n >= g.max || group.n >= g.min && preps[i].nameHash%groupCut == 0 {
			closeGroup()
		}
	}
	closeGroup()
	if archives {
		if links != nil {
			add(links)
		}
		return pieces, srcs, nil
	}
	tail := &piece{}
	tail.lit(trailerAt(off))
	add(tail)
	return pieces, srcs, nil
}

// prepared is a record's header and the source of its data, worked out
// before the records are cut into pieces.
type prepared struct {
	hdr      []byte
	size     int64
	nameHash uint64
	src      *source
	err      error
}

// prepare works out the records' headers and sources on all cores (the
// stat index is only read) and returns the first error in record order.
func prepare(ctx context.Context, v *overlay.View, recs []record, idx *statIndex) ([]prepared, error) {
	out := make([]prepared, len(recs))
	per := (len(recs) + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for lo := 0; lo < len(recs); lo += per {
		wg.Add(1)
		go func(part []prepared, recs []record) {
			defer wg.Done()
			for i, r := range recs {
				if err := ctx.Err(); err != nil {
					part[i].err = stopped(r.node.Path, err)
					return
				}
				if part[i] = prepareRecord(v, r, idx); part[i].err != nil {
					return
				}
			}
		}(out[lo:min(lo+per, len(recs))], recs[lo:min(lo+per, len(recs))])
	}
	wg.Wait()
	for _, p := range out {
		if p.err != nil {
			return nil, p.err
		}
	}
	return out, nil
}

func prepareRecord(v *overlay.View, r record, idx *statIndex) prepared {
	h, c, err := recordOf(v, r)
	if err != nil {
		return prepared{err: err}
	}
	var src *source
	if c != nil {
		if src, err = openSource(r.node, c, idx); err != nil {
			return prepared{err: err}
		}
		h.Size = src.size
	}
	if err := check(&h); err != nil {
		return prepared{err: fmt.Errorf("%s: %w", h.Name, err)}
	}
	return prepared{hdr: appendHeader(make([]byte, 0, newcHeaderLen+len(h.Name)+4), &h, 0), size: h.Size, nameHash: nameHash(h.Name), src: src}
}

// archiveEnd is the trailer that ends the archive of each piece of a codec
// that writes archives, unpadded: the next piece starts a new frame.
var archiveEnd = appendHeader(nil, &Header{Name: trailerName, NLink: 1}, 0)

func (s span) len() int64 {
	if s.src == nil {
		return int64(len(s.lit))
	}
	return s.src.chunkLen(s.chunk)
}

// known says whether the sums of all the piece's data are known.
func (p *piece) known() bool {
	for _, s := range p.spans {
		if s.src != nil && !s.src.known[s.chunk] {
			return false
		}
	}
	return true
}

func (p *piece) lit(b []byte) {
	if len(b) > 0 {
		p.spans = append(p.spans, span{lit: b})
		p.n += int64(len(b))
	}
}

func (p *piece) header(b []byte, path string) {
	p.spans = append(p.spans, span{lit: b, record: path})
	p.n += int64(len(b))
}

// where names the piece in messages: the first record it holds.
func (p *piece) where() string {
	for _, s := range p.spans {
		if s.record != "" {
			return s.record
		}
	}
	return "the archive trailer"
}

func stopped(at string, err error) error {
	return fmt.Errorf("packing stopped at %s: %w", at, err)
}

// record adds a whole record to p: its header, its data (from src, nil
// when it has none) and padding, and returns srcs with src added.
func (p *piece) record(hdr []byte, path string, src *source, pad []byte, srcs []*source) []*source {
	p.header(hdr, path)
	if src != nil && src.size > 0 {
		srcs = append(srcs, src)
		for i := range src.sums {
			p.data(src, i)
		}
	}
	p.lit(pad)
	return srcs
}

func (p *piece) data(s *source, chunk int) {
	p.spans = append(p.spans, span{src: s, chunk: chunk})
	p.n += s.chunkLen(chunk)
}

// openSource finds the size of c's data, and for a host file whose stat the
// index knows, the sums of its chunks, without reading it. The stat is the
// one the view's layer took (Entry.HostStat) when it has one, while the
// view was built just before the pack; a chunk that is read is checked
// against it by fstat and by its sum, as against a stat taken here.
func openSource(n *overlay.Node, c overlay.Content, idx *statIndex) (*source, error) {
	s := &source{path: n.Path, layer: n.Layer, content: c}
	if hf, ok := c.(overlay.HostFile); ok {
		st := n.HostStat
		if st == nil {
			fi, err := os.Lstat(string(hf))
			if err != nil {
				return nil, fmt.Errorf("%s: host file of layer %s: %w", n.Path, n.Layer, err)
			}
			st = fi.Sys().(*syscall.Stat_t)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return nil, fmt.Errorf("%s: %s is no longer a regular file", n.Path, hf)
		}
		s.host, s.stat, s.size = string(hf), statOf(st), st.Size
	} else {
		rd, err := c.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: opening content from layer %s: %w", n.Path, n.Layer, err)
		}
		s.size = rd.Size()
		rd.Close()
	}
	chunks := max(1, int((s.size+chunkSize-1)/chunkSize))
	s.sums, s.known = make([][32]byte, chunks), make([]bool, chunks)
	if s.host != "" {
		if sums, ok := idx.lookup(s.stat); ok && len(sums) == chunks {
			copy(s.sums, sums)
			for i := range s.known {
				s.known[i] = true
			}
			s.fromIndex = true
		}
	}
	return s, nil
}

// read fills b with chunk i of the data. A host file must still have the size
// its header announces; one that changed in any other way is read as it is
// now, and its sums are not recorded.
func (s *source) read(b []byte, i int) error {
	if s.host != "" {
		// Non-blocking: a FIFO put in the file's place since the layout's
		// stat would block the open until a writer came; this way the
		// check below refuses it.
		f, err := os.OpenFile(s.host, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("%s: host file of layer %s: %w", s.path, s.layer, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%s: %w", s.host, err)
		}
		if fi.Size() != s.size || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %s changed while it was packed (%d bytes, now %d); pack again", s.path, s.host, s.size, fi.Size())
		}
		if statOf(fi.Sys().(*syscall.Stat_t)) != s.stat {
			s.changed.Store(true)
		}
		if err := readFull(f, b, int64(i)*chunkSize); err != nil {
			return fmt.Errorf("%s: reading %s: %w", s.path, s.host, err)
		}
		return nil
	}
	rd, err := s.content.Open()
	if err != nil {
		return fmt.Errorf("%s: opening content from layer %s: %w", s.path, s.layer, err)
	}
	defer rd.Close()
	if rd.Size() != s.size {
		return fmt.Errorf("%s: content of layer %s changed while it was packed (%d bytes, now %d); pack again", s.path, s.layer, s.size, rd.Size())
	}
	if err := readFull(rd, b, int64(i)*chunkSize); err != nil {
		return fmt.Errorf("%s: reading content from layer %s: %w", s.path, s.layer, err)
	}
	return nil
}

// readFull is ReaderAt.ReadAt taking the io.EOF some readers return with
// the last byte as success.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// key names the compressed form of p: everything its bytes depend on,
// codec naming the layout and the compressor.
func (p *piece) key(codec string) [32]byte {
	h := sha256.New()
	var b [binary.MaxVarintLen64 + 1]byte
	h.Write([]byte(codec))
	for _, s := range p.spans {
		if s.src == nil {
			h.Write(binary.AppendUvarint(append(b[:0], 'L'), uint64(len(s.lit))))
			h.Write(s.lit)
			continue
		}
		h.Write(binary.AppendUvarint(append(b[:0], 'C'), uint64(s.src.chunkLen(s.chunk))))
		h.Write(s.src.sums[s.chunk][:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}
