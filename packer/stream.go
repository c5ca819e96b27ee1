package packer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// memLimit is the largest decompressed stream kept in memory; larger ones
// go to a cache file so that opening a big artifact costs disk, not RAM.
const memLimit = 16 << 20

// readBuf must hold a header plus the longest name the scanner accepts.
const readBuf = 64 << 10

// Magic bytes of what an artifact can be made of.
var (
	magicNewc = []byte("0707")
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

// decode reads an artifact the way the kernel unpacks an initramfs:
// uncompressed archives, zero padding and compressed segments (each
// holding archives) in any sequence. All archive bytes, decompressed,
// are copied to sink; the members point into it.
func decode(r io.Reader, sink io.Writer) ([]member, error) {
	raw := bufio.NewReaderSize(r, readBuf)
	s := &scanner{src: raw, sink: sink}
	for {
		if err := s.zeros(); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		head, _ := raw.Peek(len(magicXz))
		var err error
		switch {
		case bytes.HasPrefix(head, magicNewc):
			err = s.readArchive()
		case bytes.HasPrefix(head, magicGzip):
			err = s.gzipSegment(raw)
		case bytes.HasPrefix(head, magicZstd):
			err = s.zstdSegment(raw)
		case bytes.HasPrefix(head, magicXz):
			err = s.xzSegment(raw)
		default:
			err = fmt.Errorf("found %q at stream offset %d: expected a newc archive (070701), gzip or zstd data", head, s.pos)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(s.members) == 0 {
		return nil, fmt.Errorf("no archive entries found")
	}
	return s.members, nil
}

// gzipSegment reads one gzip member. The gzip reader reads the raw stream
// byte by byte through its io.ByteReader, so it stops exactly at the end of
// the member and whatever follows is left in raw.
func (s *scanner) gzipSegment(raw *bufio.Reader) error {
	gz, err := gzip.NewReader(raw)
	if err != nil {
		return fmt.Errorf("gzip data: %w", err)
	}
	gz.Multistream(false)
	return s.within(gz, "gzip")
}

// zstdSegment reads one zstd frame, leaving what follows it in raw.
func (s *scanner) zstdSegment(raw *bufio.Reader) error {
	dec, err := zstd.NewReader(&zstdFrame{raw: raw}, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("zstd data: %w", err)
	}
	defer dec.Close()
	return s.within(dec, "zstd")
}

// xzSegment reads xz data to the end of the artifact. The xz reader
// cannot stop at the end of one stream and hand back what follows, so an
// xz segment must come last, as the main archive does in the kernel's
// concatenated form; further xz streams and padding are read with it.
func (s *scanner) xzSegment(raw *bufio.Reader) error {
	xr, err := xz.NewReader(raw)
	if err != nil {
		return fmt.Errorf("xz data: %w", err)
	}
	return s.within(xr, "xz")
}

// within scans the archives held in decompressed data. Decompression runs
// in its own goroutine so that it overlaps with scanning and storing the
// stream; it has finished reading the raw stream when within returns.
func (s *scanner) within(r io.Reader, kind string) error {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.CopyBuffer(pw, r, make([]byte, readBuf))
		pw.CloseWithError(err)
	}()
	outer := s.src
	s.src = bufio.NewReaderSize(pr, readBuf)
	err := s.archives()
	pr.CloseWithError(fmt.Errorf("archive scan stopped"))
	<-done
	s.src = outer
	if err != nil {
		return fmt.Errorf("%s data: %w", kind, err)
	}
	return nil
}

// A decompressed stream may reach maxRatio times the size of its
// artifact, and at least minStreamLimit. Initramfs archives compress
// between 2 and 10 times; a stream past both bounds is a decompression
// bomb (a megabyte of zstd can expand to tens of gigabytes of zeros)
// that would fill the disk under the cache.
const maxRatio = 100

var minStreamLimit int64 = 1 << 30

func streamLimit(artifactSize int64) int64 {
	return max(minStreamLimit, maxRatio*artifactSize)
}

// sink collects the stream, in memory until it outgrows memLimit and then
// in a temporary file that finish moves to the cache.
type sink struct {
	cache string // final cache path; "" for an anonymous file
	// limit bounds the stream's size (0: no bound); total counts it.
	limit, total int64
	// mem holds chunks of memChunk bytes: a growing single buffer would
	// copy itself at every doubling and briefly need twice the memory.
	mem  [][]byte
	size int
	file *os.File
}

const memChunk = 1 << 20

func (k *sink) Write(p []byte) (int, error) {
	if k.total += int64(len(p)); k.limit > 0 && k.total > k.limit {
		return 0, fmt.Errorf("the decompressed archive grows past %d MiB, %d times the artifact's size; refusing what looks like a decompression bomb", k.limit>>20, maxRatio)
	}
	if k.file == nil && k.size+len(p) > memLimit {
		if err := k.spill(); err != nil {
			return 0, err
		}
	}
	if k.file != nil {
		return k.file.Write(p)
	}
	for rest := p; len(rest) > 0; {
		if n := len(k.mem); n == 0 || len(k.mem[n-1]) == memChunk {
			k.mem = append(k.mem, make([]byte, 0, memChunk))
		}
		last := &k.mem[len(k.mem)-1]
		n := min(len(rest), memChunk-len(*last))
		*last = append(*last, rest[:n]...)
		rest = rest[n:]
	}
	k.size += len(p)
	return len(p), nil
}

func (k *sink) spill() error {
	var err error
	if k.cache == "" {
		k.file, err = os.CreateTemp("", "fledge-stream-*")
		if err == nil {
			// Unlinked at once: the open file is all the artifact needs.
			err = os.Remove(k.file.Name())
		}
	} else {
		if err = os.MkdirAll(filepath.Dir(k.cache), 0o755); err == nil {
			k.file, err = os.CreateTemp(filepath.Dir(k.cache), ".stream-*")
		}
	}
	if err != nil {
		return fmt.Errorf("creating the stream cache: %w", err)
	}
	for _, c := range k.mem {
		if _, err := k.file.Write(c); err != nil {
			return fmt.Errorf("writing the stream cache: %w", err)
		}
	}
	k.mem = nil
	return nil
}

// finish returns the stream for random access and what must be closed
// when it is no longer needed (nil for memory).
func (k *sink) finish() (io.ReaderAt, io.Closer, error) {
	if k.file == nil {
		return bytes.NewReader(bytes.Join(k.mem, nil)), nil, nil
	}
	if k.cache != "" {
		if err := k.file.Sync(); err != nil {
			return nil, nil, err
		}
		if err := os.Rename(k.file.Name(), k.cache); err != nil {
			return nil, nil, fmt.Errorf("storing the stream cache: %w", err)
		}
	}
	return k.file, k.file, nil
}

// abort drops a partly written stream.
func (k *sink) abort() {
	if k.file != nil {
		k.file.Close()
		if k.cache != "" {
			os.Remove(k.file.Name())
		}
	}
}
