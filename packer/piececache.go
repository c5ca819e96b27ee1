package packer

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The piece cache keeps the compressed form of archive pieces (pieces.go)
// so a re-pack compresses only what changed. Layout below its directory:
//
//	<2 hex>/<64 hex>  one piece, named by its key
//	outputs/<32 hex>  the record of an artifact a pack wrote (outputrecord.go)
//	tmp/              pieces and the index being written, renamed into place
//	index             the stat index (statindex.go)
//	usage             bytes the pieces take, as last counted
//
// Every file is written beside its place and renamed, so packs running at
// once never see a torn file; a piece is checked (length and CRC-32C) before
// it is used, and a bad one is removed and compressed again.
type pieceCache struct {
	dir   string
	limit int64
	idx   *statIndex
	// added counts the bytes this pack put into the cache.
	added atomic.Int64
	// used holds the paths of the pieces this pack took or stored, which
	// pruning keeps whatever their last-use mark says.
	used sync.Map
	// readOnly is set once the cache cannot be written: it still serves
	// the pieces it holds, and warn has been told.
	readOnly atomic.Bool
	warn     func(string)
	warned   sync.Once
}

const (
	// DefaultCacheLimit is the size the piece cache is pruned to when
	// neither Options.CacheLimit nor FLEDGE_PACK_CACHE_SIZE says otherwise:
	// some ten warm images the size of the Go source tree.
	DefaultCacheLimit = 1 << 30
	// CacheLimitEnv names the variable that sets the limit, in bytes or
	// with a K, M or G suffix (powers of 1024).
	CacheLimitEnv = "FLEDGE_PACK_CACHE_SIZE"
	// staleTemp is the age after which a temporary file is taken for the
	// leftover of a killed pack; no pack writes one file for that long.
	staleTemp = time.Hour
	// pieceUseRefresh is how stale a piece's last-use mark may be: a warm
	// re-pack within it writes no mark (one utimensat per piece
	// otherwise), and pruning orders by use only that finely, taking the
	// pieces of the pack that prunes last.
	pieceUseRefresh = 10 * time.Minute
)

var (
	pieceMagic = []byte("FLPIECE1")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// pieceHeaderLen is magic, key, uncompressed length (8), CRC-32 of the
// uncompressed bytes (4) and compressed length (4); a CRC-32C of all that
// came before follows the compressed bytes.
const pieceHeaderLen = 8 + 32 + 8 + 4 + 4

// openPieceCache opens the cache in dir, or returns nil (no cache) when
// dir is empty. It sweeps the temporary files of killed packs. A cache
// that cannot be written only costs speed: warn hears of it once, and the
// pack uses what the cache holds.
func openPieceCache(dir string, limit int64, warn func(string)) (*pieceCache, error) {
	if dir == "" {
		return nil, nil
	}
	if limit == 0 {
		var err error
		if limit, err = cacheLimitFromEnv(); err != nil {
			return nil, err
		}
	}
	c := &pieceCache{dir: dir, limit: limit, warn: warn}
	tmp := filepath.Join(dir, "tmp")
	err := os.MkdirAll(tmp, 0o755)
	if err == nil {
		if err = unix.Access(tmp, unix.W_OK); err != nil {
			err = &os.PathError{Op: "write", Path: tmp, Err: err}
		}
	}
	if err != nil {
		c.unwritable(err)
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return nil, nil
		}
	} else {
		c.sweepTemps()
	}
	c.idx = loadStatIndex(filepath.Join(dir, "index"))
	return c, nil
}

// unwritable stops writing to the cache and says so once.
func (c *pieceCache) unwritable(err error) {
	c.readOnly.Store(true)
	c.warned.Do(func() {
		if c.warn != nil {
			c.warn(fmt.Sprintf("pack cache %s cannot be written (%v), so packs compress again what it lacks; make it this user's (sudo chown -R %d %s) or use another cache folder", c.dir, err, os.Getuid(), c.dir))
		}
	})
}

func cacheLimitFromEnv() (int64, error) {
	s := os.Getenv(CacheLimitEnv)
	if s == "" {
		return DefaultCacheLimit, nil
	}
	mult := int64(1)
	if i := strings.IndexAny(s, "KMGkmg"); i == len(s)-1 {
		mult = map[byte]int64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}[s[i]|0x20]
		s = s[:i]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		// A size past int64 would wrap to a negative limit, which prunes
		// the whole cache on every pack.
		return 0, fmt.Errorf("%s=%q: expected a positive size below 8 EiB, such as 512M or 2G", CacheLimitEnv, os.Getenv(CacheLimitEnv))
	}
	return n * mult, nil
}

func (c *pieceCache) index() *statIndex {
	if c == nil {
		return nil
	}
	return c.idx
}

func (c *pieceCache) path(key [32]byte) string {
	h := hex.EncodeToString(key[:])
	return filepath.Join(c.dir, h[:2], h)
}

// get returns the cached piece for key if it is whole and holds n bytes,
// read into buf when it is large enough (fresh memory costs more in page
// faults than the read does), and the buffer it was read into.
func (c *pieceCache) get(key [32]byte, n int64, buf []byte) ([]byte, uint32, []byte, bool) {
	if c == nil {
		return nil, 0, buf, false
	}
	p := c.path(key)
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, buf, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < pieceHeaderLen+4 || fi.Size() > maxPieceFile(n) {
		os.Remove(p)
		return nil, 0, buf, false
	}
	if int64(cap(buf)) < fi.Size() {
		// Room for the largest gzip or lz4 piece, so that it is kept.
		buf = make([]byte, max(fi.Size(), 2<<20))
	}
	b := buf[:fi.Size()]
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, 0, buf, false
	}
	comp, crc, ok := decodePiece(b, key, n)
	if !ok {
		os.Remove(p)
		return nil, 0, buf, false
	}
	c.used.Store(p, true)
	if now := time.Now(); !c.readOnly.Load() && now.Sub(fi.ModTime()) > pieceUseRefresh {
		// The mtime is the time of last use that pruning orders by,
		// kept to within pieceUseRefresh.
		os.Chtimes(p, now, now)
	}
	return comp, crc, buf, true
}

// maxPieceFile is more than any piece of n bytes can take in the cache:
// deflate adds a few bytes per block of stored data at worst, far less than
// an eighth. A larger file is corrupt, and is not read into memory.
func maxPieceFile(n int64) int64 {
	return pieceHeaderLen + 4 + n + n/8 + 1<<10
}

func decodePiece(b []byte, key [32]byte, n int64) ([]byte, uint32, bool) {
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if !bytes.Equal(b[:8], pieceMagic) || !bytes.Equal(b[8:40], key[:]) ||
		crc32.Checksum(body, castagnoli) != sum ||
		int64(binary.LittleEndian.Uint64(b[40:48])) != n ||
		int(binary.LittleEndian.Uint32(b[52:56])) != len(body)-pieceHeaderLen {
		return nil, 0, false
	}
	return body[pieceHeaderLen:], binary.LittleEndian.Uint32(b[48:52]), true
}

// put stores a piece. A cache that cannot be written only costs speed: the
// first error is a warning, and the pack goes on without storing pieces.
func (c *pieceCache) put(key [32]byte, comp []byte, crc uint32, n int64) {
	if c == nil || c.readOnly.Load() {
		return
	}
	head := make([]byte, 0, pieceHeaderLen)
	head = append(append(head, pieceMagic...), key[:]...)
	head = binary.LittleEndian.AppendUint64(head, uint64(n))
	head = binary.LittleEndian.AppendUint32(head, crc)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(comp)))
	sum := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, comp)
	p := c.path(key)
	err := os.MkdirAll(filepath.Dir(p), 0o755)
	if err == nil {
		err = c.writeFile(p, head, comp, binary.LittleEndian.AppendUint32(nil, sum))
	}
	if err != nil {
		c.unwritable(err)
		return
	}
	c.used.Store(p, true)
	c.added.Add(int64(len(head) + len(comp) + 4))
}

// writeFile puts the parts, one after the other, at p by way of a
// temporary file and a rename.
func (c *pieceCache) writeFile(p string, parts ...[]byte) error {
	f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	for _, b := range parts {
		if err == nil {
			_, err = f.Write(b)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (c *pieceCache) sweepTemps() {
	dir := filepath.Join(c.dir, "tmp")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// finish records what this pack learned of its host files and keeps the
// cache within its limit.
func (c *pieceCache) finish(srcs []*source, start time.Time) {
	if c == nil || c.readOnly.Load() {
		return
	}
	for _, s := range srcs {
		switch {
		case s.host == "":
		case s.changed.Load():
			c.idx.forget(s.stat)
		default:
			c.idx.record(s.stat, s.sums, s.fromIndex, start)
		}
	}
	if err := c.idx.save(start, c.writeFile); err != nil {
		c.unwritable(err)
	}
	c.account()
}

// account adds this pack's bytes to the recorded usage and prunes once
// that is over the limit, also when this pack added nothing: the limit may
// have been lowered since. Packs running at once may each miss the other's
// bytes; the next count over the limit lists the cache and sets it right.
func (c *pieceCache) account() {
	usageFile := filepath.Join(c.dir, "usage")
	b, _ := os.ReadFile(usageFile)
	used, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	added := c.added.Load()
	used += added
	if used > c.limit {
		used = c.prune()
	} else if added == 0 {
		return
	}
	c.writeFile(usageFile, []byte(strconv.FormatInt(used, 10)+"\n"))
}

// prune removes the least recently used pieces, those this pack used last,
// until what remains fits in nine tenths of the limit (so pruning is not
// needed again at once) and returns the bytes that remain.
func (c *pieceCache) prune() int64 {
	type entry struct {
		path string
		size int64
		used time.Time
		mine bool // used by this pack
	}
	var all []entry
	var total int64
	dirs, _ := os.ReadDir(c.dir)
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 && d.Name() != "outputs" {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(c.dir, d.Name()))
		for _, f := range files {
			if fi, err := f.Info(); err == nil && fi.Mode().IsRegular() {
				p := filepath.Join(c.dir, d.Name(), f.Name())
				_, mine := c.used.Load(p)
				all = append(all, entry{p, fi.Size(), fi.ModTime(), mine})
				total += fi.Size()
			}
		}
	}
	slices.SortFunc(all, func(a, b entry) int {
		if a.mine != b.mine {
			return cmp.Compare(btoi(a.mine), btoi(b.mine))
		}
		return a.used.Compare(b.used)
	})
	for _, e := range all {
		if total <= c.limit/10*9 {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
	return total
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
