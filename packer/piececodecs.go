package packer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// A pieceCodec is how one compression writes an archive in pieces
// (pieces.go) that a re-pack can take from the cache. The kernel decides
// the form (init/initramfs.c unpack_to_rootfs): it decompresses one gzip
// member, zstd frame or xz stream at a time, and a member, frame or stream
// must end where an archive ends ("junk at the end of compressed archive"
// otherwise), while an lz4 legacy frame is read to the end of the image as
// blocks that each decompress on their own.
//   - gzip: one member whose deflate stream is the pieces, each from an
//     empty window and ending with a sync flush, so one archive as
//     `zcat | cpio -i` expects;
//   - lz4: one legacy frame whose blocks are the pieces;
//   - zstd, xz: a frame or stream per piece, each piece a whole archive
//     with its own trailer, hard links kept within one (the kernel forgets
//     them at a trailer).
type pieceCodec struct {
	// id names the layout, the compressor, its settings and its module's
	// version in every cache key: change it whenever the same input could
	// give other bytes.
	id string
	// archives says each piece is a whole archive.
	archives bool
	// head starts the output; tail, when set, ends it, given the CRC-32
	// and length of all the uncompressed bytes.
	head    []byte
	tail    func(crc uint32, size int64) []byte
	encoder func() pieceEncoder
	// stream, for a codec whose pieces may be over bigPiece, compresses
	// such a piece as a stream (bigpiece.go). Which of the two compresses
	// a piece depends on its size alone, so warm and cold packs agree.
	stream func(w io.Writer) (io.WriteCloser, error)
}

// pieceEncoder compresses one piece at a time, reusing its state.
type pieceEncoder interface {
	encode(raw []byte) ([]byte, error)
}

// pieceCodecs has the compressions that are written in pieces; none is
// written whole, since it has nothing to save.
var pieceCodecs = map[string]*pieceCodec{
	Gzip: {
		id:      codecID("gzip pieces 1", "github.com/klauspost/compress", gzipLevel),
		head:    gzipHeader,
		tail:    gzipTail,
		encoder: func() pieceEncoder { return &deflater{} },
	},
	LZ4: {
		id:      codecID("lz4 legacy blocks 1", "github.com/pierrec/lz4/v4", lz4.Level1),
		head:    magicLZ4,
		encoder: func() pieceEncoder { return &lz4Blocker{} },
	},
	Zstd: {
		id:       codecID("zstd frames 1", "github.com/klauspost/compress", zstd.SpeedBetterCompression),
		archives: true,
		encoder:  func() pieceEncoder { return &zstdFramer{} },
		stream: func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		},
	},
	Xz: {
		id:       codecID("xz streams 1", "github.com/ulikunitz/xz", "crc32"),
		archives: true,
		encoder:  func() pieceEncoder { return &xzStreamer{} },
		stream: func(w io.Writer) (io.WriteCloser, error) {
			return xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
		},
	},
}

// buildInfo is read once for the four codec ids, at start-up.
var buildInfo, haveBuildInfo = debug.ReadBuildInfo()

func codecID(layout, mod string, setting any) string {
	return fmt.Sprintf("fledge %s, %s, %v", layout, moduleVersion(buildInfo, haveBuildInfo, mod), setting)
}

// moduleVersion returns what names module mod's code in the running
// binary. A module replaced by a folder has no version nor sum: its code
// may change under the same name, so it gets a name of the process's own
// start, as does every module without build information, which keeps the
// cache from serving another build.
func moduleVersion(bi *debug.BuildInfo, ok bool, mod string) string {
	if ok {
		for _, d := range bi.Deps {
			if d.Path != mod {
				continue
			}
			if d.Replace != nil {
				d = d.Replace
			}
			if d.Version != "" && d.Sum != "" {
				return mod + "@" + d.Version + " " + d.Sum
			}
		}
	}
	return fmt.Sprintf("%s@unknown %d", mod, time.Now().UnixNano())
}

// gzipHeader is RFC 1952's fixed header with no name, no time (0 means
// none) and OS "unknown", so nothing of the packing host shows.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty final deflate block (fixed Huffman, only the end
// code): the pieces end with non-final blocks, so the stream needs one.
var finalBlock = []byte{0x03, 0x00}

func gzipTail(crc uint32, size int64) []byte {
	tail := binary.LittleEndian.AppendUint32(append([]byte(nil), finalBlock...), crc)
	return binary.LittleEndian.AppendUint32(tail, uint32(size)) // ISIZE is the length modulo 2^32
}

// deflater compresses raw from an empty window and ends with a sync
// flush: byte-aligned, not final, so pieces concatenate into one stream.
type deflater struct {
	fw  *flate.Writer
	buf bytes.Buffer
}

func (d *deflater) encode(raw []byte) ([]byte, error) {
	d.buf.Reset()
	if d.fw == nil {
		fw, err := flate.NewWriter(&d.buf, gzipLevel)
		if err != nil {
			return nil, err
		}
		d.fw = fw
	} else {
		d.fw.Reset(&d.buf)
	}
	if _, err := d.fw.Write(raw); err != nil {
		return nil, err
	}
	if err := d.fw.Flush(); err != nil {
		return nil, err
	}
	return bytes.Clone(d.buf.Bytes()), nil
}

// lz4Blocker writes a piece as one legacy block: its compressed size
// (32-bit little-endian) and the block. Pieces hold less than the 8 MiB a
// legacy block may decompress to (pieces.go), at HC Level1 as lz4Writer.
type lz4Blocker struct {
	c lz4.CompressorHC
}

func (z *lz4Blocker) encode(raw []byte) ([]byte, error) {
	if len(raw) > lz4Block {
		return nil, fmt.Errorf("a piece of %d bytes is over the %d of an lz4 legacy block", len(raw), lz4Block)
	}
	z.c.Level = lz4.Level1
	dst := make([]byte, 4+lz4.CompressBlockBound(len(raw)))
	n, err := z.c.CompressBlock(raw, dst[4:])
	if err == nil && n == 0 {
		err = errors.New("lz4 block compression produced nothing")
	}
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(dst, uint32(n))
	return dst[:4+n], nil
}

// zstdFramer writes a piece as one frame, at the level of the whole-stream
// writer (compress.go). The kernel wants a window of at most 8 MiB, the
// encoder's default.
type zstdFramer struct {
	enc *zstd.Encoder
}

func (z *zstdFramer) encode(raw []byte) ([]byte, error) {
	if z.enc == nil {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		z.enc = enc
	}
	return z.enc.EncodeAll(raw, nil), nil
}

// xzStreamer writes a piece as one stream with a CRC32 check, the one the
// kernel's decoder verifies (compress.go).
type xzStreamer struct {
	buf bytes.Buffer
}

func (x *xzStreamer) encode(raw []byte) ([]byte, error) {
	x.buf.Reset()
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&x.buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(x.buf.Bytes()), nil
}

// groupSizes are the layout's bounds (pieces.go): a record of small bytes
// or more is a piece of its own, and smaller ones are grouped into pieces
// of min to max bytes.
type groupSizes struct{ small, min, max int64 }

// archiveGroups are larger than gzip's (pieces.go): a zstd frame or xz
// stream starts from nothing, and their windows reach far back, so
// smaller pieces cost size. On the Go source tree these make zstd 0.5%
// larger than one zstd stream on 2 cores (bench/repack.sh measures it);
// groups of 2 to 8 MiB made it 2.3% larger, and large records from
// 512 KiB on, each a frame of its own, 1.6%. The price is what an edit
// of a small file costs: its group of up to 16 MiB is compressed again.
var archiveGroups = groupSizes{1 << 20, 8 << 20, 16 << 20}
