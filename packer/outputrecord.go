package packer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An output record remembers, per artifact path, the artifact a pack left
// there: its stat, the sha256 of its bytes and where each piece lies in it.
// While the file at that path still has that stat, the next pack knows its
// bytes without reading them: a piece it holds is copied from it inside
// the kernel (copy_file_range) instead of being read from the cache, and
// one at the same offset is not even copied, so a pack with nothing
// changed reads and writes no artifact byte. The stat is trusted as the
// stat index trusts a host file's (statindex.go): only when the record was
// taken a clock tick or more after the file's last change, since a change
// within the same tick may leave every time as it was.
type outputRecord struct {
	stat   fileStat
	sha256 [sha256.Size]byte
	// pieces holds where each piece lies, in archive order: pieces of the
	// same bytes (files alike) have one key.
	pieces map[[32]byte][]oldPiece
}

// oldPiece is where a piece lies in the artifact a record describes: at
// off, comp bytes compressed, crc the CRC-32 of its uncompressed bytes.
type oldPiece struct {
	off, comp int64
	crc       uint32
	// state is the artifact's sha256 state before the piece
	// (encoding.BinaryMarshaler), nil when the pack did not hash it.
	state []byte
}

var outputMagic = []byte("FLOUT2\n\x00")

// outputPath is where the record of the artifact at dst is kept.
func (c *pieceCache) outputPath(dst string) string {
	sum := sha256.Sum256([]byte(dst))
	return filepath.Join(c.dir, "outputs", hex.EncodeToString(sum[:16]))
}

// output returns the record of the artifact at dst (an absolute path) if
// the file there, whose stat is st, is the one it describes.
func (c *pieceCache) output(dst string, st fileStat) *outputRecord {
	if c == nil {
		return nil
	}
	b, err := os.ReadFile(c.outputPath(dst))
	if err != nil {
		return nil
	}
	r, ok := decodeOutput(b, dst)
	if !ok || r.stat != st {
		return nil
	}
	return r
}

func decodeOutput(b []byte, dst string) (*outputRecord, bool) {
	if len(b) < len(outputMagic)+4 || !bytes.Equal(b[:len(outputMagic)], outputMagic) ||
		crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, false
	}
	b = b[len(outputMagic) : len(b)-4]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) || string(b[k:k+int(n)]) != dst {
		return nil, false
	}
	b = b[k+int(n):]
	if len(b) < 5*8+sha256.Size {
		return nil, false
	}
	var f [5]uint64
	for i := range f {
		f[i], b = binary.LittleEndian.Uint64(b), b[8:]
	}
	r := &outputRecord{stat: fileStat{dev: f[0], ino: f[1], size: int64(f[2]), mtime: int64(f[3]), ctime: int64(f[4])}}
	r.sha256, b = [sha256.Size]byte(b), b[sha256.Size:]
	const entry = 32 + 8 + 8 + 4 + 1
	r.pieces = map[[32]byte][]oldPiece{}
	for len(b) > 0 {
		if len(b) < entry || len(b)-entry < int(b[entry-1]) {
			return nil, false
		}
		key := [32]byte(b)
		p := oldPiece{off: int64(binary.LittleEndian.Uint64(b[32:])), comp: int64(binary.LittleEndian.Uint64(b[40:])), crc: binary.LittleEndian.Uint32(b[48:])}
		if n := int(b[entry-1]); n > 0 {
			p.state = b[entry : entry+n]
		}
		if p.off < 0 || p.comp < 0 || p.off > r.stat.size-p.comp {
			return nil, false
		}
		r.pieces[key] = append(r.pieces[key], p)
		b = b[entry+len(p.state):]
	}
	return r, true
}

// piece returns where the artifact the record describes holds the piece
// of key: at off if it is there.
func (r *outputRecord) piece(key [32]byte, off int64) (oldPiece, bool) {
	if r == nil || len(r.pieces[key]) == 0 {
		return oldPiece{}, false
	}
	at := r.pieces[key]
	for _, p := range at {
		if p.off == off {
			return p, true
		}
	}
	return at[0], true
}

// placed is a piece as a pack wrote it: its key and where it lies.
type placed struct {
	key [32]byte
	oldPiece
}

// putOutput records the artifact just written to dst: f, whose bytes have
// sha256 sum and hold pieces. A record taken within a tick of the file's
// last change could not tell a change in that tick: it waits for the tick
// to pass where that is a few milliseconds, and is not written otherwise.
func (c *pieceCache) putOutput(dst string, f *os.File, sum [sha256.Size]byte, pieces []placed) {
	if c == nil || c.readOnly.Load() {
		return
	}
	var st syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil {
		return
	}
	changed := max(st.Mtim.Nano(), st.Ctim.Nano())
	tick := timestampTick(f, changed)
	wait := time.Duration(changed + int64(tick) - time.Now().UnixNano())
	switch {
	case wait > maxTickWait:
		return
	case wait > 0:
		time.Sleep(wait)
		var again syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &again) != nil || statOf(&again) != statOf(&st) {
			return
		}
	}
	b := append([]byte(nil), outputMagic...)
	b = binary.AppendUvarint(b, uint64(len(dst)))
	b = append(b, dst...)
	s := statOf(&st)
	for _, v := range [...]uint64{s.dev, s.ino, uint64(s.size), uint64(s.mtime), uint64(s.ctime)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = append(b, sum[:]...)
	for _, p := range pieces {
		b = append(b, p.key[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(p.off))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.comp))
		b = binary.LittleEndian.AppendUint32(b, p.crc)
		if len(p.state) > 255 {
			p.state = nil
		}
		b = append(append(b, byte(len(p.state))), p.state...)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	p := c.outputPath(dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.unwritable(err)
		return
	}
	// Pruning takes the records with the pieces, by age (piececache.go).
	if err := c.writeFile(p, b); err != nil {
		c.unwritable(err)
	}
}

// maxTickWait bounds how long a pack waits for its artifact's timestamp
// tick to pass before recording it.
const maxTickWait = 25 * time.Millisecond

// timestampTick is how far apart two changes of f may be and still get the
// same times. The file systems that stamp with the kernel's coarse clock
// (ext4, xfs, btrfs, tmpfs, f2fs, bcachefs) tick with it, twice its
// resolution to be safe; one whose last change fell on a whole second
// keeps seconds (ext4 with small inodes, for one), and any other file
// system (FAT, network and FUSE file systems) may be as coarse as
// racyWindow.
func timestampTick(f *os.File, changed int64) time.Duration {
	var fs unix.Statfs_t
	var res unix.Timespec
	if changed%int64(time.Second) == 0 || unix.Fstatfs(int(f.Fd()), &fs) != nil || unix.ClockGetres(unix.CLOCK_REALTIME_COARSE, &res) != nil {
		return racyWindow
	}
	switch uint32(fs.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC, unix.BCACHEFS_SUPER_MAGIC:
		return 2 * time.Duration(res.Nano())
	}
	return racyWindow
}
