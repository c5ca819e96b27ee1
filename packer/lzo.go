package packer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// lzop files, as the kernel's lib/decompress_unlzo.c reads them: a header
// (magic, versions, method, flags, mode, times, a name and a checksum),
// then blocks of at most 256 KiB of output, each announced by its
// uncompressed and compressed sizes and one checksum word that is not
// checked, and a zero size that ends the file. A block whose two sizes
// are equal is stored; the others are LZO1X data.
var magicLZO = []byte{0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a, 0x1a, 0x0a}

const (
	lzoBlock     = 256 << 10
	lzoHasFilter = 0x800
)

type lzoReader struct {
	raw      *bufio.Reader
	out, src []byte
	block    []byte
	done     bool
}

func newLZOReader(raw *bufio.Reader) (io.Reader, error) {
	if err := lzoHeader(raw); err != nil {
		return nil, fmt.Errorf("lzop header: %w", err)
	}
	return &lzoReader{raw: raw}, nil
}

// lzoHeader consumes the file header, field by field as the kernel does.
func lzoHeader(raw *bufio.Reader) error {
	var h [9 + 7]byte
	if _, err := io.ReadFull(raw, h[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	if string(h[:9]) != string(magicLZO) {
		return errors.New("no lzop magic")
	}
	version := binary.BigEndian.Uint16(h[9:])
	skip := 0
	if version >= 0x0940 {
		skip = 1 // level
	}
	if _, err := raw.Discard(skip); err != nil {
		return io.ErrUnexpectedEOF
	}
	var flags [4]byte
	if _, err := io.ReadFull(raw, flags[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	skip = 8 // mode and mtime_low
	if binary.BigEndian.Uint32(flags[:])&lzoHasFilter != 0 {
		skip += 4
	}
	if version >= 0x0940 {
		skip += 4 // mtime_high
	}
	if _, err := raw.Discard(skip); err != nil {
		return io.ErrUnexpectedEOF
	}
	n, err := raw.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	if _, err := raw.Discard(int(n) + 4); err != nil { // name, checksum
		return io.ErrUnexpectedEOF
	}
	return nil
}

func (z *lzoReader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.done {
			return 0, io.EOF
		}
		if err := z.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

func (z *lzoReader) next() error {
	var sizes [12]byte
	if _, err := io.ReadFull(z.raw, sizes[:4]); err != nil {
		return fmt.Errorf("lzop data: %w", io.ErrUnexpectedEOF)
	}
	dst := binary.BigEndian.Uint32(sizes[:4])
	if dst == 0 {
		z.done = true
		return nil
	}
	if dst > lzoBlock {
		return fmt.Errorf("lzop block of %d bytes: at most %d are allowed", dst, lzoBlock)
	}
	if _, err := io.ReadFull(z.raw, sizes[4:]); err != nil {
		return fmt.Errorf("lzop data: %w", io.ErrUnexpectedEOF)
	}
	src := binary.BigEndian.Uint32(sizes[4:8])
	if src == 0 || src > dst {
		return fmt.Errorf("lzop block compressed to %d bytes from %d: corrupted", src, dst)
	}
	if cap(z.src) < int(src) {
		z.src = make([]byte, src)
	}
	z.src = z.src[:src]
	if _, err := io.ReadFull(z.raw, z.src); err != nil {
		return fmt.Errorf("lzop data: %w", io.ErrUnexpectedEOF)
	}
	if src == dst {
		z.out = z.src
		return nil
	}
	if z.block == nil {
		z.block = make([]byte, lzoBlock)
	}
	n, err := lzo1xDecompress(z.src, z.block[:dst])
	if err == nil && n != int(dst) {
		err = fmt.Errorf("it holds %d bytes, its header says %d", n, dst)
	}
	if err != nil {
		return fmt.Errorf("lzop block: %w", err)
	}
	z.out = z.block[:n]
	return nil
}

var errLZOInput = errors.New("lzo1x data ends early")

// lzo1xDecompress decodes one LZO1X block into dst, which bounds the
// output, and returns the bytes written. The encoding is the one the
// kernel's lzo1x_decompress_safe reads (Documentation/staging/lzo.rst):
// instructions that copy literals from the input or earlier output,
// a literal count (state) carried from one instruction to the next, and
// an end marker after which no input may remain.
func lzo1xDecompress(src, dst []byte) (int, error) {
	d := lzoDecoder{src: src, dst: dst}
	return d.run()
}

type lzoDecoder struct {
	src, dst []byte
	ip, op   int
}

func (d *lzoDecoder) run() (int, error) {
	if len(d.src) >= 5 && d.src[0] == 17 {
		// A bitstream version (LZO-RLE); lzop writes version 0 only.
		if v := d.src[1]; v != 0 {
			return 0, fmt.Errorf("lzo1x bitstream version %d (LZO-RLE) is not lzop's", v)
		}
		d.ip = 2
	}
	state := 0
	if d.ip < len(d.src) && d.src[d.ip] > 17 {
		t := int(d.src[d.ip]) - 17
		d.ip++
		if err := d.literals(t); err != nil {
			return 0, err
		}
		state = min(t, 4)
	}
	for {
		inst, err := d.byte()
		if err != nil {
			return 0, err
		}
		var length, dist int
		var next byte
		switch {
		case inst >= 64:
			h, err := d.byte()
			if err != nil {
				return 0, err
			}
			length = 3 + int(inst>>5&1)
			if inst >= 128 {
				length = 5 + int(inst>>5&3)
			}
			dist = int(h)<<3 + int(inst>>2&7) + 1
			next = inst & 3
		case inst >= 32:
			if length, err = d.length(int(inst&31), 31); err != nil {
				return 0, err
			}
			le, err := d.le16()
			if err != nil {
				return 0, err
			}
			length += 2
			dist = le>>2 + 1
			next = byte(le & 3)
		case inst >= 16:
			if length, err = d.length(int(inst&7), 7); err != nil {
				return 0, err
			}
			le, err := d.le16()
			if err != nil {
				return 0, err
			}
			length += 2
			dist = 16384 + int(inst&8)<<11 + le>>2
			if dist == 16384 {
				if length != 3 {
					return 0, fmt.Errorf("lzo1x end marker of length %d: the kernel ends a block only at 11 00 00", length)
				}
				if d.ip != len(d.src) {
					return 0, fmt.Errorf("lzo1x data goes on %d bytes past its end marker", len(d.src)-d.ip)
				}
				return d.op, nil
			}
			next = byte(le & 3)
		case state == 0:
			if length, err = d.length(int(inst), 15); err != nil {
				return 0, err
			}
			if err := d.literals(length + 3); err != nil {
				return 0, err
			}
			state = 4
			continue
		default:
			h, err := d.byte()
			if err != nil {
				return 0, err
			}
			length, dist = 2, int(h)<<2+int(inst>>2&3)+1
			if state == 4 {
				length, dist = 3, dist+2048
			}
			next = inst & 3
		}
		if err := d.match(dist, length); err != nil {
			return 0, err
		}
		if err := d.literals(int(next)); err != nil {
			return 0, err
		}
		state = int(next)
	}
}

func (d *lzoDecoder) byte() (byte, error) {
	if d.ip >= len(d.src) {
		return 0, errLZOInput
	}
	d.ip++
	return d.src[d.ip-1], nil
}

func (d *lzoDecoder) le16() (int, error) {
	if d.ip+2 > len(d.src) {
		return 0, errLZOInput
	}
	d.ip += 2
	return int(binary.LittleEndian.Uint16(d.src[d.ip-2:])), nil
}

// length extends a length field of the given mask: zero means the mask
// plus 255 for every zero byte that follows, plus the first other byte.
func (d *lzoDecoder) length(v, mask int) (int, error) {
	if v != 0 {
		return v, nil
	}
	v = mask
	for {
		b, err := d.byte()
		if err != nil {
			return 0, err
		}
		if b != 0 {
			return v + int(b), nil
		}
		if v += 255; v > len(d.dst) {
			return 0, errLZOOutput
		}
	}
}

var errLZOOutput = errors.New("lzo1x data decodes past the block's size")

func (d *lzoDecoder) literals(n int) error {
	switch {
	case n > len(d.src)-d.ip:
		return errLZOInput
	case n > len(d.dst)-d.op:
		return errLZOOutput
	}
	d.op += copy(d.dst[d.op:], d.src[d.ip:d.ip+n])
	d.ip += n
	return nil
}

// match copies length bytes from dist bytes back; the ranges may overlap,
// which repeats the last dist bytes, so it copies byte by byte.
func (d *lzoDecoder) match(dist, length int) error {
	switch {
	case dist > d.op:
		return fmt.Errorf("lzo1x match reaches %d bytes back from output offset %d", dist, d.op)
	case length > len(d.dst)-d.op:
		return errLZOOutput
	}
	for i := range length {
		d.dst[d.op+i] = d.dst[d.op+i-dist]
	}
	d.op += length
	return nil
}
