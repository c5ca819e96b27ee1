package packer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// bigPiece is the size above which a piece is never held in memory: it is
// compressed as a stream into a file (in the cache, when there is one)
// and copied from there into the artifact. Only a zstd or xz piece gets
// this large: a file of its own, or the hard-link groups (pieces.go).
const bigPiece = 16 << 20

// compressBig is compress for a piece over bigPiece: its data is read a
// chunk at a time, for the sums the key needs and again to compress it,
// and the compressed piece is a file the writer copies from.
func (c *pieceCompressor) compressBig(ctx context.Context, p *piece) pieceOut {
	chunk := c.buffer(chunkSize)
	for _, s := range p.spans {
		if s.src == nil || s.src.known[s.chunk] {
			continue
		}
		if err := c.readSpan(ctx, s, chunk[:s.len()]); err != nil {
			return pieceOut{err: err}
		}
	}
	key := p.key(c.codec.id)
	if o, ok := c.inArtifact(key); ok {
		return o
	}
	if f, n, ok := c.cache.openBig(key, p.n); ok {
		c.stats.reused.Add(1)
		return pieceOut{key: key, file: f, fileLen: n}
	}
	f, inCache, err := c.cache.createBig()
	if err != nil {
		return pieceOut{err: err}
	}
	n, err := c.streamPiece(ctx, p, chunk, f)
	if err == nil {
		// A sum corrected while the piece was read changes its key.
		key = p.key(c.codec.id)
		err = c.cache.keepBig(f, inCache, key, p.n, n)
	}
	if err != nil && inCache {
		os.Remove(f.Name())
	}
	if err != nil {
		f.Close()
		return pieceOut{err: err}
	}
	c.stats.compressed.Add(1)
	return pieceOut{key: key, file: f, fileLen: n}
}

// streamPiece compresses p into f after room for the cache's header, and
// returns the compressed length.
func (c *pieceCompressor) streamPiece(ctx context.Context, p *piece, chunk []byte, f *os.File) (int64, error) {
	if _, err := f.Seek(pieceHeaderLen, io.SeekStart); err != nil {
		return 0, err
	}
	cw := &countingWriter{w: f}
	bw := bufio.NewWriterSize(cw, 1<<20)
	zw, err := c.codec.stream(bw)
	if err != nil {
		return 0, err
	}
	for _, s := range p.spans {
		b := s.lit
		if s.src != nil {
			b = chunk[:s.len()]
			if err := c.readSpan(ctx, s, b); err != nil {
				return 0, err
			}
		}
		if _, err := zw.Write(b); err != nil {
			return 0, fmt.Errorf("compressing the piece at %s: %w", p.where(), err)
		}
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("compressing the piece at %s: %w", p.where(), err)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// readSpan reads the chunk of data span s into b and sets its sum. Where
// the index vouched for a sum the file no longer matches, the bytes that
// are there win, and the file is not recorded against its stat.
func (c *pieceCompressor) readSpan(ctx context.Context, s span, b []byte) error {
	if err := ctx.Err(); err != nil {
		return stopped(s.src.path, err)
	}
	if err := s.src.read(b, s.chunk); err != nil {
		return err
	}
	c.stats.read.Add(1)
	sum := sha256.Sum256(b)
	if s.src.known[s.chunk] && sum != s.src.sums[s.chunk] {
		s.src.changed.Store(true)
	}
	s.src.sums[s.chunk], s.src.known[s.chunk] = sum, true
	return nil
}

// openBig opens the cached piece of key, for a piece of n bytes, checked
// whole by a read of it, and returns its file and compressed length; the
// compressed bytes start at pieceHeaderLen.
func (c *pieceCache) openBig(key [32]byte, n int64) (*os.File, int64, bool) {
	if c == nil {
		return nil, 0, false
	}
	p := c.path(key)
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, false
	}
	comp, ok := checkBig(f, key, n)
	if !ok {
		f.Close()
		os.Remove(p)
		return nil, 0, false
	}
	c.used.Store(p, true)
	return f, comp, true
}

// checkBig checks the piece file f as decodePiece checks a piece in
// memory, reading it through once.
func checkBig(f *os.File, key [32]byte, n int64) (int64, bool) {
	fi, err := f.Stat()
	if err != nil || fi.Size() < pieceHeaderLen+4 || fi.Size() > maxPieceFile(n) {
		return 0, false
	}
	head := make([]byte, pieceHeaderLen)
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, false
	}
	comp := fi.Size() - pieceHeaderLen - 4
	if string(head[:8]) != string(pieceMagic) || [32]byte(head[8:40]) != key ||
		int64(binary.LittleEndian.Uint64(head[40:48])) != n || int64(binary.LittleEndian.Uint32(head[52:56])) != comp {
		return 0, false
	}
	h := crc32.New(castagnoli)
	h.Write(head)
	if _, err := io.CopyN(h, f, comp); err != nil {
		return 0, false
	}
	var sum [4]byte
	if _, err := io.ReadFull(f, sum[:]); err != nil || h.Sum32() != binary.LittleEndian.Uint32(sum[:]) {
		return 0, false
	}
	return comp, true
}

// createBig makes the file a big piece is compressed into: in the cache's
// tmp folder (inCache), where keepBig renames it into place, or, with no
// cache to write to, an unnamed file that goes when it is closed.
func (c *pieceCache) createBig() (f *os.File, inCache bool, err error) {
	if c != nil && !c.readOnly.Load() {
		if f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "big.*"); err == nil {
			return f, true, nil
		}
	}
	if f, err = os.CreateTemp("", "fledge-piece-*"); err != nil {
		return nil, false, fmt.Errorf("a file to compress a large piece into: %w", err)
	}
	os.Remove(f.Name())
	return f, false, nil
}

// keepBig writes the header and checksum of the piece compressed into f,
// comp bytes after the header, and puts f in the cache under key when it
// was made there.
func (c *pieceCache) keepBig(f *os.File, inCache bool, key [32]byte, n, comp int64) error {
	if comp > 1<<32-1 {
		return fmt.Errorf("a compressed piece of %d bytes is over the 4 GiB a piece may take", comp)
	}
	head := make([]byte, 0, pieceHeaderLen)
	head = append(append(head, pieceMagic...), key[:]...)
	head = binary.LittleEndian.AppendUint64(head, uint64(n))
	head = binary.LittleEndian.AppendUint32(head, 0)
	head = binary.LittleEndian.AppendUint32(head, uint32(comp))
	if _, err := f.WriteAt(head, 0); err != nil {
		return err
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, pieceHeaderLen+comp)); err != nil {
		return err
	}
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, h.Sum32()), pieceHeaderLen+comp); err != nil {
		return err
	}
	if !inCache {
		return nil
	}
	p := c.path(key)
	err := os.MkdirAll(filepath.Dir(p), 0o755)
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		c.unwritable(err)
		return nil
	}
	c.used.Store(p, true)
	c.added.Add(pieceHeaderLen + comp + 4)
	return nil
}

// copyPiece writes the n compressed bytes of the piece file f to w: into
// an artifact inside the kernel where it can (artifactWriter.copyFrom).
func copyPiece(w io.Writer, f *os.File, n int64) error {
	if aw, ok := w.(*artifactWriter); ok {
		return aw.copyFrom(f, pieceHeaderLen, n)
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, pieceHeaderLen, n)); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}
