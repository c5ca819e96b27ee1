package packer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/pierrec/lz4/v4"
)

// The kernel's lz4 initramfs format is the legacy frame of `lz4 -l`
// (lib/decompress_unlz4.c): the magic, then blocks of at most 8 MiB of
// input, each compressed on its own and prefixed by its compressed size
// (32-bit little-endian). The frame has no end mark and no checksum; the
// kernel reads blocks up to the end of the image, skipping repeated magic
// words (concatenated frames).
const (
	lz4Magic = 0x184C2102
	lz4Block = 8 << 20
)

var magicLZ4 = []byte{0x02, 0x21, 0x4c, 0x18}

// lz4Writer writes the legacy frame. Blocks are compressed in parallel and
// written in order; a block's bytes depend on its input alone, so the
// output is the same on any number of cores.
type lz4Writer struct {
	w       io.Writer
	buf     []byte
	pending []chan lz4Result // compressions in flight, oldest first
	workers int
	started bool
	err     error
}

type lz4Result struct {
	data []byte
	err  error
}

func newLZ4Writer(w io.Writer) *lz4Writer {
	return &lz4Writer{w: w, workers: runtime.GOMAXPROCS(0)}
}

func (z *lz4Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && z.err == nil {
		if z.buf == nil {
			z.buf = make([]byte, 0, lz4Block)
		}
		c := min(len(p), lz4Block-len(z.buf))
		z.buf = append(z.buf, p[:c]...)
		p, n = p[c:], n+c
		if len(z.buf) == lz4Block {
			z.submit()
		}
	}
	return n, z.err
}

// submit compresses the buffered block in the background, writing the
// oldest finished block once as many are in flight as there are cores.
func (z *lz4Writer) submit() {
	block := z.buf
	z.buf = nil
	ch := make(chan lz4Result, 1)
	go func() {
		dst := make([]byte, lz4.CompressBlockBound(len(block)))
		// HC at Level9 comes within 6% of `lz4 -l -9`; the fast
		// compressor's blocks are 16% larger and unpack no faster.
		c := lz4.CompressorHC{Level: lz4.Level9}
		n, err := c.CompressBlock(block, dst)
		if err == nil && n == 0 {
			err = errors.New("lz4 block compression produced nothing")
		}
		ch <- lz4Result{data: dst[:n], err: err}
	}()
	z.pending = append(z.pending, ch)
	if len(z.pending) > z.workers {
		z.emit()
	}
}

func (z *lz4Writer) emit() {
	r := <-z.pending[0]
	z.pending = z.pending[1:]
	if z.err != nil {
		return
	}
	if z.err = r.err; z.err != nil {
		return
	}
	z.head()
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(len(r.data)))
	if z.err == nil {
		_, z.err = z.w.Write(size[:])
	}
	if z.err == nil {
		_, z.err = z.w.Write(r.data)
	}
}

func (z *lz4Writer) head() {
	if !z.started && z.err == nil {
		z.started = true
		_, z.err = z.w.Write(magicLZ4)
	}
}

// Close writes the last block and waits for all of them; w stays open.
func (z *lz4Writer) Close() error {
	if len(z.buf) > 0 && z.err == nil {
		z.submit()
	}
	for len(z.pending) > 0 {
		z.emit()
	}
	z.head()
	return z.err
}

// lz4Reader decodes a legacy frame the way the kernel does, to the end of
// the image: anything after the frame (zero padding, a size word, another
// archive) is read as a block and refused, as the kernel refuses it after
// unpacking what came before ("data corrupted" or "Decoding failed").
type lz4Reader struct {
	raw    *bufio.Reader
	at     int64 // bytes of the frame consumed, for messages
	out    []byte
	block  []byte
	chunk  []byte
	blocks int
}

func newLZ4Reader(raw *bufio.Reader) (io.Reader, error) {
	var magic [4]byte
	if _, err := io.ReadFull(raw, magic[:]); err != nil || binary.LittleEndian.Uint32(magic[:]) != lz4Magic {
		return nil, fmt.Errorf("lz4 data: no legacy frame magic (02 21 4c 18)")
	}
	return &lz4Reader{raw: raw, at: 4}, nil
}

func (z *lz4Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if err := z.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

func (z *lz4Reader) next() error {
	var word [4]byte
	n, err := io.ReadFull(z.raw, word[:])
	switch {
	case n == 0 && err == io.EOF && z.blocks > 0:
		return io.EOF
	case n == 0 && err == io.EOF:
		return fmt.Errorf("the lz4 frame ends before its first block")
	case err != nil:
		return fmt.Errorf("%d stray bytes after the lz4 blocks at frame offset %d: the kernel refuses the image there", n, z.at)
	}
	size := binary.LittleEndian.Uint32(word[:])
	if size == lz4Magic {
		z.at += 4
		return nil
	}
	if size == 0 || size > uint32(lz4.CompressBlockBound(lz4Block)) {
		return fmt.Errorf("lz4 block size %d at frame offset %d: expected 1 to %d bytes; the kernel stops there (data after an lz4 frame, such as padding or a size word, is not allowed)", size, z.at, lz4.CompressBlockBound(lz4Block))
	}
	if cap(z.chunk) < int(size) {
		z.chunk = make([]byte, size)
	}
	z.chunk = z.chunk[:size]
	if _, err := io.ReadFull(z.raw, z.chunk); err != nil {
		return fmt.Errorf("lz4 block of %d bytes at frame offset %d runs past the end of the image (a size word appended after the data?): the kernel refuses it", size, z.at)
	}
	if z.block == nil {
		z.block = make([]byte, lz4Block)
	}
	k, err := lz4.UncompressBlock(z.chunk, z.block)
	if err != nil {
		return fmt.Errorf("lz4 block at frame offset %d: %w (blocks hold at most 8 MiB)", z.at, err)
	}
	z.at += 4 + int64(size)
	z.blocks++
	z.out = z.block[:k]
	return nil
}
