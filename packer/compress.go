package packer

import (
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression names accepted by Options.Compression (and LZ4).
const (
	Gzip = "gzip"
	Zstd = "zstd"
	Xz   = "xz"
	None = "none"
)

// gzipLevel 8 is the fastest of klauspost's deflate levels whose output
// on a source tree stays within 1.5% of `gzip -9` when compressed in
// pieces (pieces.go): 1.2% there, where level 9 takes nearly twice the time for
// 0.8% less. bench/repack.sh measures it.
const gzipLevel = 8

// compressor wraps w in the named compression as one stream, as the
// kernel reads it (a pack writes gzip in pieces, writePieces; a re-pack
// of an artifact writes a changed segment whole). Closing the result
// flushes the compressed stream but leaves w open.
func compressor(w io.Writer, name string) (io.WriteCloser, error) {
	switch name {
	case Gzip:
		return gzip.NewWriterLevel(w, gzipLevel)
	case Zstd:
		// Job-based encoding splits the input at fixed sizes derived from
		// the window, so the frame is the same whatever the concurrency;
		// it is only used with a concurrency above 1, hence the floor of 2.
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithEncoderConcurrency(max(2, runtime.GOMAXPROCS(0))),
			zstd.WithConcurrentBlocks(true),
		)
	case Xz:
		// The kernel's xz decoder checks CRC32 or nothing; the CRC64 most
		// xz tools default to makes it refuse the initramfs. The encoder
		// runs on one core and is deterministic.
		return xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
	case LZ4:
		return newLZ4Writer(w), nil
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("compression %q is not supported; use %s, %s, %s, %s or %s", name, Gzip, Zstd, Xz, LZ4, None)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
