package packer

import (
	"bufio"
	"fmt"
	"io"
)

// zstdFrame passes through exactly one zstd frame (RFC 8878 §3.1.1) and
// then reports io.EOF. The zstd decoder reads ahead, so without this the
// zero padding or archive that may follow a frame, as the kernel allows,
// would be taken for a broken frame.
type zstdFrame struct {
	raw      *bufio.Reader
	left     int64 // bytes of the current piece still to pass
	started  bool
	last     bool // the last block's header has passed
	checksum bool
	done     bool
}

func (z *zstdFrame) Read(p []byte) (int, error) {
	for z.left == 0 {
		if z.done {
			return 0, io.EOF
		}
		if err := z.nextPiece(); err != nil {
			return 0, err
		}
	}
	n, err := z.raw.Read(p[:min(int64(len(p)), z.left)])
	z.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// nextPiece measures the next part of the frame: its header, a block, or
// the trailing checksum.
func (z *zstdFrame) nextPiece() error {
	switch {
	case !z.started:
		z.started = true
		return z.header()
	case z.last:
		z.done = true
		if z.checksum {
			z.left = 4
		}
		return nil
	}
	b, err := z.raw.Peek(3)
	if err != nil {
		return fmt.Errorf("zstd block header: %w", io.ErrUnexpectedEOF)
	}
	bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	z.last = bh&1 == 1
	size := int64(bh >> 3)
	switch (bh >> 1) & 3 {
	case 1: // RLE: one byte repeated size times
		size = 1
	case 3:
		return fmt.Errorf("zstd block of reserved type")
	}
	z.left = 3 + size
	return nil
}

func (z *zstdFrame) header() error {
	b, err := z.raw.Peek(5)
	if err != nil {
		return fmt.Errorf("zstd frame header: %w", io.ErrUnexpectedEOF)
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	z.checksum = fhd&0x04 != 0
	n := int64(5)
	if !single {
		n++ // window descriptor
	}
	n += [4]int64{0, 1, 2, 4}[fhd&3] // dictionary ID
	switch fcs := fhd >> 6; {
	case fcs == 0 && single:
		n++
	case fcs > 0:
		n += [4]int64{0, 2, 4, 8}[fcs]
	}
	z.left = n
	return nil
}
