package packer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// Segment is one archive of an image, or one compressed stream of
// archives, as the kernel meets them one after the other.
type Segment struct {
	Offset          int64  `json:"offset"`      // in the artifact
	Compression     string `json:"compression"` // None, Gzip, Bzip2, …
	CompressedBytes int64  `json:"compressed_bytes"`
	Bytes           int64  `json:"bytes"`   // uncompressed
	Entries         int    `json:"entries"` // not counting trailers
}

// decode reads an artifact the way the kernel unpacks an initramfs:
// uncompressed archives, zero padding and compressed segments (each
// holding archives) in any sequence, compressions recognised by their
// magic. All archive bytes, decompressed, are copied to sink; the members
// point into it.
func decode(r io.Reader, sink io.Writer) ([]member, []Segment, error) {
	ms, segs, _, err := decodeAt(r, sink)
	return ms, segs, err
}

// decodeAt is decode that also tells where each segment's archives start
// in the stream written to sink.
func decodeAt(r io.Reader, sink io.Writer) ([]member, []Segment, []int64, error) {
	in := &countingReader{r: r}
	raw := bufio.NewReaderSize(in, readBuf)
	s := &scanner{src: raw, sink: sink}
	var (
		segs []Segment
		at   []int64
	)
	for {
		if err := s.zeros(); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, nil, err
		}
		if err := s.align(); err != nil {
			return nil, nil, nil, err
		}
		seg := Segment{Offset: in.n - int64(raw.Buffered()), Compression: None}
		if n := len(segs); n > 0 && segs[n-1].Compression == None && seg.Offset%4 != 0 {
			// The kernel reads the padding after an uncompressed archive
			// as part of it, and wants it to end on a multiple of 4.
			return nil, nil, nil, fmt.Errorf("offset %d: the padding after the archive at offset %d does not end on a multiple of 4 bytes; the kernel stops there (\"broken padding\")", seg.Offset, segs[n-1].Offset)
		}
		pos, count := s.pos, len(s.members)
		head, _ := raw.Peek(len(magicLZO))
		var err error
		if bytes.HasPrefix(head, magicNewc) && seg.Offset%4 != 0 {
			// The kernel takes an archive only at a multiple of 4 bytes
			// into the image; elsewhere "070701" is an unknown magic.
			err = fmt.Errorf("a newc archive at offset %d, which is not a multiple of 4: the kernel reports \"invalid magic\" there", seg.Offset)
		} else if bytes.HasPrefix(head, magicNewc) {
			err = s.readArchive()
		} else if f := sniff(head); f != nil {
			seg.Compression = f.name
			err = s.segment(raw, f, seg.Offset)
		} else {
			err = unknownFormat(head, seg.Offset)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		seg.CompressedBytes = in.n - int64(raw.Buffered()) - seg.Offset
		seg.Bytes, seg.Entries = s.pos-pos, len(s.members)-count
		segs, at = append(segs, seg), append(at, pos)
	}
	if len(s.members) == 0 {
		return nil, nil, nil, fmt.Errorf("no archive entries found")
	}
	return s.members, segs, at, nil
}

// segment scans the archives of one compressed segment.
func (s *scanner) segment(raw *bufio.Reader, f *format, off int64) error {
	r, release, err := f.open(raw)
	if err == nil {
		defer release()
		err = s.within(r)
	}
	if err != nil {
		return fmt.Errorf("%s data at offset %d: %w", f.name, off, err)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// within scans the archives held in decompressed data. Decompression runs
// in its own goroutine so that it overlaps with scanning and storing the
// stream; it has finished reading the raw stream when within returns.
func (s *scanner) within(r io.Reader) error {
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
	return err
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
	// discard counts the stream against limit but keeps none of it.
	discard bool
}

const memChunk = 1 << 20

func (k *sink) Write(p []byte) (int, error) {
	if k.total += int64(len(p)); k.limit > 0 && k.total > k.limit {
		return 0, fmt.Errorf("the decompressed archive grows past %d MiB, %d times the artifact's size; refusing what looks like a decompression bomb", k.limit>>20, maxRatio)
	}
	if k.discard {
		return len(p), nil
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
