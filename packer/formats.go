package packer

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// A format is a compression the kernel unpacks an initramfs from. Its
// magic is what the kernel's decompress_method matches: the first two
// bytes (lib/decompress.c), or all of a longer magic where the decoder
// would refuse anything else anyway.
type format struct {
	name  string
	magic []byte
	// open returns a reader of the decompressed data that consumes raw
	// exactly to the segment's end (lz4: to the end of the image, as the
	// kernel's decoder does), and what to release after.
	open func(raw *bufio.Reader) (io.Reader, func(), error)
}

// Names of the compressions read, as `fledge ls --segments` shows them.
const (
	Bzip2 = "bzip2"
	Lzma  = "lzma"
	Lzo   = "lzo"
	LZ4   = "lz4"
)

var formats = []format{
	{name: Gzip, magic: magicGzip, open: openGzip},
	{name: Bzip2, magic: []byte("BZ"), open: openBzip2},
	{name: Lzma, magic: []byte{0x5d, 0}, open: openLzma},
	{name: Xz, magic: magicXz, open: openXz},
	{name: Lzo, magic: magicLZO, open: noRelease(newLZOReader)},
	{name: LZ4, magic: magicLZ4, open: noRelease(newLZ4Reader)},
	{name: Zstd, magic: magicZstd, open: openZstd},
}

// sniff returns the format whose magic head starts with, or nil.
func sniff(head []byte) *format {
	for i := range formats {
		if bytes.HasPrefix(head, formats[i].magic) {
			return &formats[i]
		}
	}
	return nil
}

// unknownFormat says what was found where an archive or compressed data
// should start: its first bytes, in hex.
func unknownFormat(head []byte, off int64) error {
	what := "not an initramfs"
	if off > 0 {
		what = fmt.Sprintf("at offset %d", off)
	}
	return fmt.Errorf("%s: found bytes % x, expected a newc archive (070701) or gzip, bzip2, lzma, xz, lzo, lz4 or zstd data", what, head)
}

func noRelease(open func(*bufio.Reader) (io.Reader, error)) func(*bufio.Reader) (io.Reader, func(), error) {
	return func(raw *bufio.Reader) (io.Reader, func(), error) {
		r, err := open(raw)
		return r, func() {}, err
	}
}

// openGzip reads one gzip member. The reader reads raw byte by byte
// through its io.ByteReader, so it stops exactly at the member's end; a
// following member is the next segment.
func openGzip(raw *bufio.Reader) (io.Reader, func(), error) {
	gz, err := gzip.NewReader(raw)
	if err != nil {
		return nil, nil, err
	}
	gz.Multistream(false)
	return gz, func() {}, nil
}

// zstdMaxWindow caps the window a frame may ask for: the zstd format's
// own default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 128 MiB), above which
// the reference decoder also refuses a frame unless told otherwise.
const zstdMaxWindow = 128 << 20

// openZstd reads one zstd frame; zstdFrame stops the decoder's read-ahead
// at the frame's end.
func openZstd(raw *bufio.Reader) (io.Reader, func(), error) {
	dec, err := zstd.NewReader(&zstdFrame{raw: raw}, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		return nil, nil, err
	}
	return dec, dec.Close, nil
}

// openXz reads one xz stream. The reader checks that nothing follows the
// stream by reading one byte more; lagReader keeps that byte in raw, so
// padding or another segment after the stream is read on, as the kernel
// does. The xz reader takes DictCap as the least dictionary to allocate,
// not the most, so none is given: each block gets the size its header
// asks for.
func openXz(raw *bufio.Reader) (io.Reader, func(), error) {
	lag := &lagReader{raw: raw, lag: 1}
	xr, err := xz.ReaderConfig{SingleStream: true}.NewReader(lag)
	return &streamEnd{r: xr, lag: lag, next: errXzNext}, func() {}, err
}

// errXzNext is the message of the error the xz reader reports when data
// follows a stream; the reader does not export it.
const errXzNext = "xz: unexpected data after stream"

// maxDict caps the dictionary an lzma header may ask for, which the
// decoder allocates at once: xz's largest preset uses 64 MiB.
const maxDict = 128 << 20

// openLzma reads the .lzma format (`xz --format=lzma`): a 13-byte header
// (properties, dictionary size, uncompressed size or -1 for "up to the end
// marker") and the raw stream, read through raw's io.ByteReader so that
// it stops at its end.
func openLzma(raw *bufio.Reader) (io.Reader, func(), error) {
	lr, err := lzma.ReaderConfig{DictCap: maxDict}.NewReader(raw)
	return lr, func() {}, err
}

// errBzip2Next is what the bzip2 reader reports when a stream is followed
// by something other than another bzip2 stream.
var errBzip2Next = bzip2.StructuralError("bad magic value in continuation file")

// openBzip2 reads bzip2 streams. After a stream the reader looks at two
// more bytes for a concatenated one; lagReader keeps the last two bytes in
// raw, so when they turn out to be padding or another archive, they are
// still there for the next segment.
func openBzip2(raw *bufio.Reader) (io.Reader, func(), error) {
	lag := &lagReader{raw: raw, lag: 2}
	return &streamEnd{r: bzip2.NewReader(lag), lag: lag, next: errBzip2Next.Error()}, func() {}, nil
}

// streamEnd ends a decoder's data where its stream ends: the error with
// the message next means the bytes it looked at last belong to what
// follows, and the end of the input means they belonged to the stream.
type streamEnd struct {
	r    io.Reader
	lag  *lagReader
	next string
}

func (b *streamEnd) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	switch {
	case err != nil && err.Error() == b.next:
		return n, io.EOF
	case err == io.EOF:
		b.lag.settle()
	}
	return n, err
}

// lagReader hands out raw's bytes but discards each only when lag more
// have been handed out, so the last lag bytes read stay in raw.
type lagReader struct {
	raw          *bufio.Reader
	lag, pending int
}

func (l *lagReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// Peek returns what it has when the buffer or the input ends first.
	b, _ := l.raw.Peek(l.pending + len(p))
	if len(b) <= l.pending {
		return 0, io.EOF
	}
	n := copy(p, b[l.pending:])
	l.pending += n
	if over := l.pending - l.lag; over > 0 {
		l.raw.Discard(over)
		l.pending = l.lag
	}
	return n, nil
}

func (l *lagReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := l.Read(b[:])
	return b[0], err
}

// settle consumes the bytes held back: they belonged to the stream.
func (l *lagReader) settle() {
	l.raw.Discard(l.pending)
	l.pending = 0
}

// IsBinary reports whether the file at path starts with a NUL byte or
// with the magic of a compression: no recipe does, so such a file is
// opened as an artifact and, in no format the kernel reads, refused with
// what was found.
func IsBinary(path string) bool {
	f, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	return sniff(head) != nil || bytes.IndexByte(head, 0) >= 0
}
