package packer

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// Compression names accepted by Options.Compression (and LZ4).
const (
	Gzip = "gzip"
	Zstd = "zstd"
	Xz   = "xz"
	None = "none"
)

const (
	// gzipLevel 8 is the fastest of klauspost's deflate levels whose
	// output on a source tree stays within 1% of `gzip -9` (level 7 is
	// 2.5% larger); level 9 takes three times as long for 0.7% less.
	// bench/pack.sh measures it.
	gzipLevel = 8
	// gzipBlock is the unit pgzip compresses independently (each block
	// primed with the last 32 KiB of the one before). The output depends
	// on the block size only, never on how many blocks run at once, which
	// is what makes the artifact independent of GOMAXPROCS.
	gzipBlock = 1 << 20
)

// compressor wraps w in the named compression. Closing the result flushes
// the compressed stream but leaves w open.
func compressor(w io.Writer, name string) (io.WriteCloser, error) {
	switch name {
	case "", Gzip:
		z, err := pgzip.NewWriterLevel(w, gzipLevel)
		if err != nil {
			return nil, err
		}
		// A zero ModTime would be written as the low bits of year 1; the
		// Unix epoch writes the 0 that means "no time".
		z.ModTime = time.Unix(0, 0)
		if err := z.SetConcurrency(gzipBlock, 2*runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		return z, nil
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
