package packer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, cut := range []int{0, 1, 3, 4096, 65537, len(data) - 1, len(data)} {
		a, b := data[:cut], data[cut:]
		got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b)))
		if want := crc32.ChecksumIEEE(data); got != want {
			t.Errorf("cut at %d: combined %08x, want %08x", cut, got, want)
		}
	}
}

// hostTree writes files of every piece kind into a new folder: small ones
// that share group pieces, one with a piece of its own and one spanning
// several chunks. Their mtimes are an hour old.
func hostTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := map[string]int{"big": 3*chunkSize + 12345, "mid": smallRecord + 1, "empty": 0}
	for i := range 40 {
		sizes[fmt.Sprintf("small/%02d", i)] = 1 + rng.IntN(40<<10)
	}
	for name, n := range sizes {
		writeOld(t, filepath.Join(dir, name), prose(rng, n))
	}
	settle()
	return dir
}

// settle waits until files written so far are no longer racy: their ctime
// (which Chtimes cannot set back) is then older than the next pack by more
// than racyWindow, so the stat index may vouch for them.
func settle() {
	time.Sleep(racyWindow + 10*time.Millisecond)
}

var anHourAgo = time.Now().Add(-time.Hour).Truncate(time.Second)

func writeOld(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, anHourAgo, anHourAgo); err != nil {
		t.Fatal(err)
	}
}

// hostView is the tree mapped at /src, read from the host now.
func hostView(t *testing.T, dir string) *overlay.View {
	return viewOf(t, overlay.Skeleton(), overlay.Mappings("", []overlay.Mapping{{Host: dir, Guest: "/src"}}))
}

// packCached packs v with the cache in dir and returns what it did.
func packCached(t *testing.T, v *overlay.View, dir string, limit int64) ([]byte, *packStats) {
	t.Helper()
	return packWith(t, v, Options{CacheDir: dir, CacheLimit: limit})
}

// packWith packs v with opts and returns what it did.
func packWith(t *testing.T, v *overlay.View, opts Options) ([]byte, *packStats) {
	t.Helper()
	var b bytes.Buffer
	opts.stats = &packStats{}
	if err := Write(context.Background(), v, &b, opts); err != nil {
		t.Fatalf("Write(%s) with cache %s: %v", opts.Compression, opts.CacheDir, err)
	}
	return b.Bytes(), opts.stats
}

func wantStats(t *testing.T, what string, st *packStats, read, deflated int64) {
	t.Helper()
	if st.read.Load() != read || st.compressed.Load() != deflated {
		t.Errorf("%s: %d chunks read, %d pieces compressed (%d reused); want %d read, %d compressed",
			what, st.read.Load(), st.compressed.Load(), st.reused.Load(), read, deflated)
	}
}

// TestWarmPackIsTheColdPack packs the same inputs without a cache, into an
// empty cache and from the warm cache on one and on eight cores: the bytes
// must be the same, and the warm packs must neither read nor compress.
func TestWarmPackIsTheColdPack(t *testing.T) {
	dir, cache := hostTree(t), t.TempDir()
	cold := pack(t, hostView(t, dir), Gzip)
	first, st := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(first, cold) {
		t.Fatalf("a pack into an empty cache differs from a pack without one")
	}
	wantStats(t, "first pack", st, 45, st.reused.Load()+st.compressed.Load())
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 8} {
		runtime.GOMAXPROCS(procs)
		warm, st := packCached(t, hostView(t, dir), cache, 0)
		if !bytes.Equal(warm, cold) {
			t.Fatalf("warm pack with GOMAXPROCS=%d differs from the cold pack", procs)
		}
		wantStats(t, fmt.Sprintf("warm pack with GOMAXPROCS=%d", procs), st, 0, 0)
	}
	checkGzip(t, cold, pack(t, hostView(t, dir), None))
}

// TestTouchedFileIsReadNotCompressed: new times on the same content make
// the file be read again (its stat changed) but its piece is reused.
func TestTouchedFileIsReadNotCompressed(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	before, _ := packCached(t, hostView(t, dir), cache, 0)
	touched := anHourAgo.Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "small/07"), touched, touched); err != nil {
		t.Fatal(err)
	}
	after, st := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(after, before) {
		t.Fatalf("touching a mapped file changed the artifact")
	}
	wantStats(t, "pack after touch", st, 1, 0)
}

// TestChangeWithinTheSameSecond rewrites a file just after it was packed,
// keeping its size and mtime: only ctime and the racy rule can tell.
func TestChangeWithinTheSameSecond(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	p := filepath.Join(dir, "small/03")
	old, _ := os.ReadFile(p)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		t.Fatal(err)
	}
	packCached(t, hostView(t, dir), cache, 0)
	if err := os.WriteFile(p, bytes.ToUpper(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, now, now); err != nil {
		t.Fatal(err)
	}
	got, _ := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(got, pack(t, hostView(t, dir), Gzip)) {
		t.Fatalf("the re-pack differs from a cold pack of the changed tree: stale bytes")
	}
}

// TestRacyEntryIsNotTrusted checks the rule itself on a stat that did not
// change at all, as on a file system with coarse timestamps.
func TestRacyEntryIsNotTrusted(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		mtime   time.Time
		trusted bool
	}{
		{start.Add(-time.Hour), true},
		{start.Add(-racyWindow - time.Millisecond), true},
		{start.Add(-racyWindow / 2), false},
		{start.Add(time.Second), false},
	} {
		x := &statIndex{entries: map[fileID]indexEntry{}}
		st := fileStat{dev: 1, ino: 2, size: 3, mtime: tc.mtime.UnixNano(), ctime: tc.mtime.UnixNano()}
		x.record(st, [][32]byte{{1}}, false, start)
		if _, ok := x.lookup(st); ok != tc.trusted {
			t.Errorf("mtime %v before the pack: trusted %v, want %v", start.Sub(tc.mtime), ok, tc.trusted)
		}
	}
}

// TestFileReplacedByRename puts new content of the same size and mtime in
// place with rename(2), as editors and compilers do.
func TestFileReplacedByRename(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	before, _ := packCached(t, hostView(t, dir), cache, 0)
	p := filepath.Join(dir, "mid")
	old, _ := os.ReadFile(p)
	writeOld(t, p+".new", bytes.ToUpper(old))
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	after, st := packCached(t, hostView(t, dir), cache, 0)
	if bytes.Equal(after, before) {
		t.Fatalf("the renamed-over file was not seen")
	}
	if !bytes.Equal(after, pack(t, hostView(t, dir), Gzip)) {
		t.Fatalf("the re-pack differs from a cold pack of the changed tree")
	}
	wantStats(t, "pack after rename", st, 1, 1)
}

// pieceFiles lists the cached pieces.
func pieceFiles(t *testing.T, cache string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cache, "??", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pieces in %s (%v)", cache, err)
	}
	return files
}

// TestCorruptPieceIsRebuilt damages every cached piece, by a flipped byte
// or a cut, and wants the re-pack to read and compress everything again
// and be right.
func TestCorruptPieceIsRebuilt(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	good, _ := packCached(t, hostView(t, dir), cache, 0)
	files := pieceFiles(t, cache)
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			b[len(b)/2] ^= 0x40
		case 1:
			b = b[:len(b)-1]
		case 2:
			b = b[:3]
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, st := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(got, good) {
		t.Fatalf("a pack over corrupt pieces differs from the good artifact")
	}
	wantStats(t, "pack over corrupt pieces", st, 45, int64(len(files)))
	_, st = packCached(t, hostView(t, dir), cache, 0)
	wantStats(t, "pack after the rebuild", st, 0, 0)
}

// TestHugePieceIsRebuilt grows a cached piece, sparsely, to a size no
// memory holds: the re-pack must take it for the corrupt piece it is
// rather than read it all.
func TestHugePieceIsRebuilt(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	good, _ := packCached(t, hostView(t, dir), cache, 0)
	if err := os.Truncate(pieceFiles(t, cache)[0], 1<<40); err != nil {
		t.Fatal(err)
	}
	got, st := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(got, good) {
		t.Fatalf("a pack over a huge piece differs from the good artifact")
	}
	if st.compressed.Load() != 1 {
		t.Errorf("%d pieces compressed, want the huge one", st.compressed.Load())
	}
}

func cacheBytes(t *testing.T, cache string) int64 {
	t.Helper()
	var n int64
	for _, f := range pieceFiles(t, cache) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestCacheStaysWithinItsLimit packs two trees of about the same size with
// room for one and a half: the older tree's pieces go, the newer's stay.
func TestCacheStaysWithinItsLimit(t *testing.T) {
	t.Parallel()
	a, b, probe := hostTree(t), t.TempDir(), t.TempDir()
	writeOld(t, filepath.Join(b, "other"), prose(rand.New(rand.NewPCG(7, 8)), 3*chunkSize))
	settle()
	packCached(t, hostView(t, b), probe, 0)
	one := cacheBytes(t, probe)
	limit := one * 3 / 2
	cache := t.TempDir()
	packCached(t, hostView(t, a), cache, limit)
	packCached(t, hostView(t, b), cache, limit)
	if n := cacheBytes(t, cache); n > limit {
		t.Fatalf("the cache holds %d bytes, over its limit of %d", n, limit)
	}
	_, st := packCached(t, hostView(t, b), cache, limit)
	wantStats(t, "re-pack of the newest tree", st, 0, 0)
	_, st = packCached(t, hostView(t, a), cache, limit)
	if st.compressed.Load() == 0 {
		t.Errorf("the oldest tree's pieces all survived the pruning")
	}
}

// TestLoweredLimitPrunesAWarmCache lowers the limit over a warm cache: the
// next pack adds no piece, and must still bring the cache under the limit.
func TestLoweredLimitPrunesAWarmCache(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	packCached(t, hostView(t, dir), cache, 0)
	limit := cacheBytes(t, cache) / 2
	_, st := packCached(t, hostView(t, dir), cache, limit)
	wantStats(t, "warm pack under a lower limit", st, 0, 0)
	if n := cacheBytes(t, cache); n > limit {
		t.Fatalf("the cache holds %d bytes, over its lowered limit of %d", n, limit)
	}
}

func TestCacheLimitFromEnv(t *testing.T) {
	for in, want := range map[string]int64{"": DefaultCacheLimit, "4096": 4096, "512M": 512 << 20, "2g": 2 << 30} {
		t.Setenv(CacheLimitEnv, in)
		if got, err := cacheLimitFromEnv(); err != nil || got != want {
			t.Errorf("%s=%q: %d, %v; want %d", CacheLimitEnv, in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "0", "lots", "5T", "M", "9000000000G", "9223372036854775807k"} {
		t.Setenv(CacheLimitEnv, in)
		if _, err := cacheLimitFromEnv(); err == nil {
			t.Errorf("%s=%q was accepted", CacheLimitEnv, in)
		}
	}
}

// TestStaleTempFilesAreSwept: a killed pack leaves a temporary file; the
// next pack removes it once it is old, and leaves a running pack's alone.
func TestStaleTempFilesAreSwept(t *testing.T) {
	cache := t.TempDir()
	tmp := filepath.Join(cache, "tmp")
	writeOld(t, filepath.Join(tmp, "killed"), []byte("half a piece"))
	old := time.Now().Add(-2 * staleTemp)
	os.Chtimes(filepath.Join(tmp, "killed"), old, old)
	if err := os.WriteFile(filepath.Join(tmp, "running"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	packCached(t, viewOf(t, richLayer()), cache, 0)
	if _, err := os.Stat(filepath.Join(tmp, "killed")); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "running")); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}

// TestTwoPacksAtOnce runs packs of two trees side by side on one cache,
// with a limit that makes them prune each other's pieces: every artifact
// must still be the cold pack of its tree.
func TestTwoPacksAtOnce(t *testing.T) {
	t.Parallel()
	trees := []string{hostTree(t), t.TempDir()}
	writeOld(t, filepath.Join(trees[1], "other"), prose(rand.New(rand.NewPCG(9, 10)), 2*chunkSize+7))
	settle()
	var cold [2][]byte
	for i, d := range trees {
		cold[i] = pack(t, hostView(t, d), Gzip)
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				tree := (w + i) % 2
				var b bytes.Buffer
				v, err := (&overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(),
					overlay.Mappings("", []overlay.Mapping{{Host: trees[tree], Guest: "/src"}})}, Epoch: testEpoch}).View()
				if err == nil {
					err = Write(context.Background(), v, &b, Options{CacheDir: cache, CacheLimit: 1 << 20})
				}
				if err != nil {
					t.Errorf("pack %d of worker %d: %v", i, w, err)
				} else if !bytes.Equal(b.Bytes(), cold[tree]) {
					t.Errorf("pack %d of worker %d: tree %d differs from its cold pack", i, w, tree)
				}
			}
		}()
	}
	wg.Wait()
}

// TestAddedFileLeavesTheOtherPieces adds a small file among the others and
// a large one: only the pieces around them and the trailer are new, which
// needs records whose bytes do not depend on their position (inode numbers
// from names, groups cut on names).
func TestAddedFileLeavesTheOtherPieces(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	for _, add := range []struct {
		name string
		size int
	}{{"small/10a", 3000}, {"large", 2*chunkSize + 5}} {
		_, before := packCached(t, hostView(t, dir), cache, 0)
		writeOld(t, filepath.Join(dir, add.name), prose(rng, add.size))
		got, st := packCached(t, hostView(t, dir), cache, 0)
		if !bytes.Equal(got, pack(t, hostView(t, dir), Gzip)) {
			t.Fatalf("after adding %s: the re-pack differs from a cold pack", add.name)
		}
		pieces := before.reused.Load() + before.compressed.Load()
		if n := st.compressed.Load(); n > 2+int64(add.size/chunkSize+1) || st.reused.Load() < pieces-3 {
			t.Errorf("after adding %s: %d pieces compressed, %d reused of %d before", add.name, n, st.reused.Load(), pieces)
		}
	}
}

// TestStatIndexFile writes an index and reads it back, then reads indexes
// whose counts claim more than the file holds, so large that they wrap
// around 64 bits, under a valid checksum: each must read as an empty
// index, not take the pack down.
func TestStatIndexFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index")
	now := time.Now()
	x := &statIndex{path: p, entries: map[fileID]indexEntry{
		{1, 2}: {stat: fileStat{dev: 1, ino: 2, size: 3, mtime: 4, ctime: 5}, read: 6, used: now.UnixNano(), sums: [][32]byte{{7}, {8}}},
		{9, 0}: {stat: fileStat{dev: 9}, used: now.UnixNano(), sums: [][32]byte{}},
	}}
	if err := os.WriteFile(p, x.encode(now), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadStatIndex(p).entries; !reflect.DeepEqual(got, x.entries) {
		t.Fatalf("index read back as %v, want %v", got, x.entries)
	}
	fields := make([]byte, entryLen)
	for name, body := range map[string][]byte{
		"2^64-1 chunks":      binary.AppendUvarint(append([]byte(nil), fields...), math.MaxUint64),
		"2^59 chunks":        binary.AppendUvarint(append([]byte(nil), fields...), 1<<59),
		"one chunk too many": binary.AppendUvarint(append([]byte(nil), fields...), 3),
		"a cut entry":        fields[:20],
	} {
		b := append(append(append([]byte(nil), indexMagic...), body...), make([]byte, 64)...)
		if name == "a cut entry" {
			b = append(append([]byte(nil), indexMagic...), body...)
		}
		if err := os.WriteFile(p, binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := loadStatIndex(p).entries; len(got) != 0 {
			t.Errorf("%s: read as %d entries, want none", name, len(got))
		}
	}
}

// TestStatIndexJournal saves a few changes to a large index as a journal
// beside it, reads them back over the snapshot, stops at a torn record,
// and writes a new snapshot once the journal has grown.
func TestStatIndexJournal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index")
	now := time.Now()
	x := &statIndex{path: p, entries: map[fileID]indexEntry{}}
	for i := range 100 {
		st := fileStat{dev: 1, ino: uint64(i), size: 3, mtime: 4, ctime: 5}
		x.entries[st.id()] = indexEntry{stat: st, read: 6, used: now.UnixNano(), sums: [][32]byte{{byte(i)}}}
	}
	write := func(p string, b ...[]byte) error { return os.WriteFile(p, slices.Concat(b...), 0o644) }
	if err := write(p, x.encode(now)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	y := loadStatIndex(p)
	changed := fileStat{dev: 1, ino: 7, size: 30, mtime: 40, ctime: 50}
	y.record(changed, [][32]byte{{70}, {71}}, false, now)
	y.forget(fileStat{dev: 1, ino: 8})
	if err := y.save(now, write); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
		t.Fatalf("saving two changes rewrote the snapshot")
	}
	z := loadStatIndex(p)
	if !reflect.DeepEqual(z.entries, y.entries) || len(z.entries) != 99 || z.entries[changed.id()].stat != changed {
		t.Fatalf("snapshot and journal read back as %d entries, want the 99 saved", len(z.entries))
	}
	// A torn last record (a pack killed while appending) is left out.
	z.record(fileStat{dev: 1, ino: 9, size: 1}, [][32]byte{{9}}, false, now)
	if err := z.save(now, write); err != nil {
		t.Fatal(err)
	}
	j, _ := os.ReadFile(p + ".log")
	if err := os.WriteFile(p+".log", j[:len(j)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if got := loadStatIndex(p).entries; !reflect.DeepEqual(got, y.entries) {
		t.Errorf("a torn journal record: read %d entries, want the %d before it", len(got), len(y.entries))
	}
	// Changes past a quarter of the snapshot make a new one.
	for i := range 40 {
		z.record(fileStat{dev: 2, ino: uint64(i), size: 1}, [][32]byte{{1}}, false, now)
	}
	if err := z.save(now, write); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p + ".log"); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after a new snapshot (%v)", err)
	}
	if got := loadStatIndex(p).entries; !reflect.DeepEqual(got, z.entries) {
		t.Errorf("the new snapshot read back as %d entries, want %d", len(got), len(z.entries))
	}
}

// TestRewriteKeepingSizeAndMtime rewrites a file the stat index vouches
// for, with the same size and its old mtime put back: only its ctime
// shows the change, and the re-pack must read it.
func TestRewriteKeepingSizeAndMtime(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	packCached(t, hostView(t, dir), cache, 0)
	p := filepath.Join(dir, "small/11")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeOld(t, p, bytes.ToUpper(old))
	got, st := packCached(t, hostView(t, dir), cache, 0)
	if !bytes.Equal(got, pack(t, hostView(t, dir), Gzip)) {
		t.Fatalf("the re-pack differs from a cold pack of the changed tree: stale bytes")
	}
	if st.compressed.Load() != 1 {
		t.Errorf("pack after the rewrite: %d pieces compressed, want the one holding small/11", st.compressed.Load())
	}
}

// swapper is content whose opening puts a FIFO in place of a host file, as
// a hostile or careless process in a mapped tree could between the stat
// of a pack's layout and the read of the file's data.
type swapper struct{ fifo, host string }

func (s swapper) Open() (overlay.Reader, error) {
	if err := os.Rename(s.fifo, s.host); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return overlay.Bytes("x").Open()
}

// TestHostFileSwappedForAFIFO wants the pack to fail naming the file, not
// to wait forever for a writer on the FIFO.
func TestHostFileSwappedForAFIFO(t *testing.T) {
	dir, side := t.TempDir(), t.TempDir()
	host, fifo := filepath.Join(dir, "data"), filepath.Join(side, "fifo")
	writeOld(t, host, []byte("file data\n"))
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	v := viewOf(t, overlay.Skeleton(), overlay.Mappings("", []overlay.Mapping{{Host: dir, Guest: "/src"}}),
		&overlay.Static{LayerName: "swap", List: []overlay.Entry{
			{Path: "/zz", Type: overlay.Regular, Perm: 0o644, Content: swapper{fifo, host}},
		}})
	done := make(chan error, 1)
	go func() { done <- Write(context.Background(), v, io.Discard, Options{CacheDir: t.TempDir()}) }()
	select {
	case err := <-done:
		if want := "/src/data: " + host + " changed while it was packed"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error containing %q", err, want)
		}
	case <-time.After(30 * time.Second):
		// Opening the write end lets the blocked reader go.
		if w, err := os.OpenFile(host, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("the pack still waited on the FIFO after 30 s")
	}
}

// TestPieceUseIsMarkedCoarsely: a warm re-pack marks the use of a piece
// (its mtime, which pruning orders by) only when the mark is older than
// pieceUseRefresh, so a re-pack soon after writes no mark per piece.
func TestPieceUseIsMarkedCoarsely(t *testing.T) {
	dir, cache := hostTree(t), t.TempDir()
	packCached(t, hostView(t, dir), cache, 0)
	pieces, _ := filepath.Glob(filepath.Join(cache, "??", "*"))
	if len(pieces) < 2 {
		t.Fatalf("%d pieces in the cache, want several", len(pieces))
	}
	recent, old := time.Now().Add(-time.Minute), time.Now().Add(-pieceUseRefresh-time.Minute)
	os.Chtimes(pieces[0], recent, recent)
	os.Chtimes(pieces[1], old, old)
	packCached(t, hostView(t, dir), cache, 0)
	for p, want := range map[string]bool{pieces[0]: false, pieces[1]: true} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if marked := time.Since(fi.ModTime()) < time.Minute/2; marked != want {
			t.Errorf("%s: use marked %v (mtime %v), want %v", p, marked, fi.ModTime(), want)
		}
	}
}

// TestArtifactSumFromTheCache: a pack takes the artifact's sha256 from the
// cache, or hashes the artifact it wrote when the cache lacks it (a first
// pack, a change, a stat index that vouched for a sum the file belies),
// and reports the sha256 of what it wrote every time.
func TestArtifactSumFromTheCache(t *testing.T) {
	t.Parallel()
	dir, cache, out := hostTree(t), t.TempDir(), t.TempDir()
	dst := filepath.Join(out, "a.cpio.gz")
	p := filepath.Join(dir, "small/05")
	packFile := func(what string) {
		t.Helper()
		res, err := WriteFile(context.Background(), hostView(t, dir), dst, Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(dst)
		if sum := sha256.Sum256(b); res.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: Result.SHA256 %s, the file's is %x", what, res.SHA256, sum)
		}
		if !bytes.Equal(b, pack(t, hostView(t, dir), Gzip)) {
			t.Fatalf("%s: the artifact differs from a cold pack", what)
		}
	}
	index := filepath.Join(cache, "index")
	packFile("first pack")
	packFile("warm pack")
	id := fileID{}
	if fi, err := os.Stat(p); err == nil {
		id = statOf(fi.Sys().(*syscall.Stat_t)).id()
	}
	before := loadStatIndex(index).entries[id].sums
	old, _ := os.ReadFile(p)
	writeOld(t, p, bytes.ToUpper(old))
	settle()
	packFile("pack after a change")
	// The index now says the changed file holds its old bytes, and the
	// pieces are gone: the pack reads the file and finds otherwise.
	x := loadStatIndex(index)
	if fi, err := os.Stat(p); err == nil {
		id = statOf(fi.Sys().(*syscall.Stat_t)).id()
	}
	e := x.entries[id]
	e.sums = before
	x.entries[id] = e
	if err := os.WriteFile(index, x.encode(time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(index + ".log")
	files, _ := filepath.Glob(filepath.Join(cache, "??", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		key, err := hex.DecodeString(filepath.Base(f))
		if err != nil || len(key) != 32 {
			t.Fatalf("%s in the cache", f)
		}
		if _, _, ok := decodePiece(b, [32]byte(key), sha256.Size); !ok {
			os.Remove(f)
		}
	}
	packFile("pack after a lying index")
}
