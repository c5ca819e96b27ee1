package packer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// writePieces writes the records in pieces (see pieces.go) compressed by
// codec, taking from the cache what it holds and compressing the rest on
// all cores. start is when the pack began, before anything was read.
func writePieces(ctx context.Context, v *overlay.View, recs []record, w io.Writer, opts Options, codec *pieceCodec, cache *pieceCache, start time.Time) error {
	pieces, srcs, err := layout(ctx, v, recs, cache.index(), codec.archives)
	if err != nil {
		return err
	}
	stats := opts.stats
	if stats == nil {
		stats = &packStats{}
	}
	// The sha256 of an artifact depends only on the keys of its pieces: the
	// cache keeps it under a key of theirs, and the bytes are hashed, read
	// back, only when it does not have it yet. The record of the artifact
	// already at the output, while that file is as the record says, gives
	// its pieces without reading them.
	aw, _ := w.(*artifactWriter)
	lookup := aw != nil && cache != nil
	var rec *outputRecord
	var dst string
	if lookup {
		aw.skipHash()
		if dst, err = filepath.Abs(aw.out.dst); err == nil && aw.out.old != nil {
			rec = cache.output(dst, aw.out.oldStat)
		}
	}
	keys, placed, err := compressPieces(ctx, pieces, codec, cache, rec, stats, w)
	if err != nil {
		return err
	}
	if !lookup {
		cache.finish(srcs, start)
		return nil
	}
	if rec != nil && aw.out.unchanged() {
		aw.vouch(rec.sha256)
		cache.finish(srcs, start)
		return nil
	}
	// The artifact is whole: it is synced while it is hashed.
	aw.out.syncEarly()
	if err := vouchOrHash(aw, cache, outputKey(codec.id, keys), placed, rec); err != nil {
		return err
	}
	// Once the artifact is in place: the stat index is written while the
	// clock tick of the artifact's rename passes, which its record waits
	// for.
	aw.written = func(f *os.File, sum [sha256.Size]byte) {
		cache.finish(srcs, start)
		cache.putOutput(dst, f, sum, placed)
	}
	return nil
}

// vouchOrHash gives aw the sha256 the cache keeps under k, or hashes the
// artifact (at its pieces, with rec's help) and keeps its sha256 there.
func vouchOrHash(aw *artifactWriter, cache *pieceCache, k [32]byte, at []placed, rec *outputRecord) error {
	if sum, _, _, ok := cache.get(k, sha256.Size, make([]byte, 0, pieceHeaderLen+sha256.Size+4)); ok {
		aw.vouch([sha256.Size]byte(sum))
		return nil
	}
	if err := aw.rehash(at, rec); err != nil {
		return err
	}
	sum := aw.sum()
	cache.put(k, sum[:], 0, sha256.Size)
	return nil
}

// outputKey names the sha256 of the artifact made of the pieces with these
// keys, in the cache beside the pieces.
func outputKey(codec string, keys [][32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("artifact of " + codec))
	for _, k := range keys {
		h.Write(k[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// pieceOut is a compressed piece and the CRC-32 of its uncompressed bytes
// (for a codec that needs it).
type pieceOut struct {
	comp []byte
	crc  uint32
	key  [32]byte
	err  error
	// buf holds comp, for another piece once comp is written; nil when
	// comp is the compressor's.
	buf []byte
	// old, when set, says the artifact at the output holds the piece
	// there, and comp is nil.
	old *oldPiece
	// file, when set, holds the piece compressed, fileLen bytes from
	// pieceHeaderLen on, in place of comp (a piece over bigPiece); the
	// writer closes it.
	file    *os.File
	fileLen int64
}

// compressPieces runs one worker per core over the pieces, writes their
// results in archive order and returns their keys and where each landed;
// at most a few pieces per worker wait to be written, which bounds the
// memory used whatever the size of the image. A piece that rec, the record
// of the artifact at the output, says that artifact holds is copied from
// it.
func compressPieces(ctx context.Context, pieces []*piece, codec *pieceCodec, cache *pieceCache, rec *outputRecord, stats *packStats, w io.Writer) ([][32]byte, []placed, error) {
	ctx, cancel := context.WithCancel(ctx)
	procs := runtime.GOMAXPROCS(0)
	outs := make([]chan pieceOut, len(pieces))
	for i := range outs {
		outs[i] = make(chan pieceOut, 1)
	}
	ahead := make(chan struct{}, 4*procs)
	free := make(buffers, 5*procs)
	todo := make(chan int)
	go func() {
		defer close(todo)
		for i := range pieces {
			select {
			case ahead <- struct{}{}:
				todo <- i
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &pieceCompressor{codec: codec, enc: codec.encoder(), cache: cache, rec: rec, stats: stats, free: free}
			for i := range todo {
				outs[i] <- c.compress(ctx, pieces[i])
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		for _, out := range outs {
			for len(out) > 0 {
				if o := <-out; o.file != nil {
					o.file.Close()
				}
			}
		}
	}()
	aw, _ := w.(*artifactWriter)
	if _, err := w.Write(codec.head); err != nil {
		return nil, nil, fmt.Errorf("writing archive: %w", err)
	}
	keys := make([][32]byte, len(pieces))
	at := make([]placed, len(pieces))
	off := int64(len(codec.head))
	var crc uint32
	var size int64
	for i, p := range pieces {
		var o pieceOut
		select {
		case o = <-outs[i]:
		case <-ctx.Done():
			return nil, nil, stopped(p.where(), ctx.Err())
		}
		<-ahead
		if o.err != nil {
			return nil, nil, o.err
		}
		n := int64(len(o.comp))
		switch {
		case o.old != nil:
			old, _ := rec.piece(o.key, off)
			n = old.comp
			if err := aw.copyOld(old.off, n); err != nil {
				return nil, nil, err
			}
		case o.file != nil:
			n = o.fileLen
			err := copyPiece(w, o.file, n)
			o.file.Close()
			if err != nil {
				return nil, nil, err
			}
		default:
			if _, err := w.Write(o.comp); err != nil {
				return nil, nil, fmt.Errorf("writing archive: %w", err)
			}
		}
		keys[i] = o.key
		at[i] = placed{key: o.key, oldPiece: oldPiece{off: off, comp: n, crc: o.crc}}
		off += n
		free.give(o.buf)
		crc = crc32Combine(crc, o.crc, p.n)
		size += p.n
	}
	if codec.tail == nil {
		return keys, at, nil
	}
	if _, err := w.Write(codec.tail(crc, size)); err != nil {
		return nil, nil, fmt.Errorf("writing archive: %w", err)
	}
	return keys, at, nil
}

// packStats counts what a pack did: chunks of file data read, pieces
// taken from the cache and pieces compressed.
type packStats struct {
	read, reused, compressed atomic.Int64
}

// pieceCompressor is one worker's state, reused piece after piece.
type pieceCompressor struct {
	codec *pieceCodec
	enc   pieceEncoder
	cache *pieceCache
	rec   *outputRecord
	stats *packStats
	raw   []byte
	free  buffers
}

// buffers keeps the buffers of written pieces for the workers' next reads.
type buffers chan []byte

// take returns a kept buffer, or nil.
func (f buffers) take() []byte {
	select {
	case b := <-f:
		return b
	default:
		return nil
	}
}

// give keeps b, unless enough are kept.
func (f buffers) give(b []byte) {
	if b == nil {
		return
	}
	select {
	case f <- b:
	default:
	}
}

// buffer returns the worker's buffer for n uncompressed bytes: reused from
// piece to piece, since fresh memory for every piece of a large image costs
// more in page faults than the copy of a cached piece does.
func (c *pieceCompressor) buffer(n int64) []byte {
	if int64(cap(c.raw)) < n {
		c.raw = make([]byte, n)
	}
	return c.raw[:n]
}

// compress returns the piece p compressed, or where the artifact at the
// output or the cache holds it.
func (c *pieceCompressor) compress(ctx context.Context, p *piece) pieceOut {
	if c.codec.stream != nil && p.n > bigPiece {
		return c.compressBig(ctx, p)
	}
	// The key needs the sums of all the data: read what the index has no
	// sums for, and the rest only if the cache lacks the piece.
	// Nothing is read for a piece that is all known and cached.
	var raw []byte
	done := make([]bool, len(p.spans))
	if !p.known() {
		raw = c.buffer(p.n)
		if err := c.fill(ctx, p, raw, done, func(s span) bool { return !s.src.known[s.chunk] }); err != nil {
			return pieceOut{err: err}
		}
	}
	key := p.key(c.codec.id)
	if o, ok := c.inArtifact(key); ok {
		return o
	}
	if o, ok := c.cached(key, p.n); ok {
		return o
	}
	if raw == nil {
		raw = c.buffer(p.n)
	}
	if err := c.fill(ctx, p, raw, done, func(span) bool { return true }); err != nil {
		return pieceOut{err: err}
	}
	key = p.key(c.codec.id) // a sum may have been corrected
	comp, err := c.enc.encode(raw)
	if err != nil {
		return pieceOut{err: fmt.Errorf("compressing the piece at %s: %w", p.where(), err)}
	}
	c.stats.compressed.Add(1)
	var crc uint32
	if c.codec.tail != nil {
		crc = crc32.ChecksumIEEE(raw)
	}
	c.cache.put(key, comp, crc, p.n)
	return pieceOut{comp: comp, crc: crc, key: key}
}

// inArtifact returns the piece of key where the artifact at the output
// holds it.
func (c *pieceCompressor) inArtifact(key [32]byte) (pieceOut, bool) {
	old, ok := c.rec.piece(key, -1)
	if !ok {
		return pieceOut{}, false
	}
	c.stats.reused.Add(1)
	return pieceOut{key: key, crc: old.crc, old: &old}, true
}

// cached returns the piece of key from the cache, read into a kept buffer.
func (c *pieceCompressor) cached(key [32]byte, n int64) (pieceOut, bool) {
	comp, crc, buf, ok := c.cache.get(key, n, c.free.take())
	if !ok {
		c.free.give(buf)
		return pieceOut{}, false
	}
	c.stats.reused.Add(1)
	return pieceOut{comp: comp, crc: crc, key: key, buf: buf}, true
}

// fill puts into raw, laid out as the piece, its literals and the data of
// the spans that want selects and done does not mark, and sets the sums of
// that data (readSpan).
func (c *pieceCompressor) fill(ctx context.Context, p *piece, raw []byte, done []bool, want func(span) bool) error {
	var off int64
	for i, s := range p.spans {
		at := off
		off += s.len()
		if done[i] || s.src != nil && !want(s) {
			continue
		}
		if err := ctx.Err(); err != nil && s.record != "" {
			return stopped(s.record, err)
		}
		done[i] = true
		if s.src == nil {
			copy(raw[at:], s.lit)
			continue
		}
		if err := c.readSpan(ctx, s, raw[at:off]); err != nil {
			return err
		}
	}
	return nil
}
