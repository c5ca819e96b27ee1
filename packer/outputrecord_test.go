package packer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// packTo packs the host tree dir into dst with the cache and returns the
// artifact's bytes, checked against the sha256 the pack reports, and what
// the pack did.
func packTo(t *testing.T, dir, dst, cache, compression string) ([]byte, *packStats) {
	t.Helper()
	st := &packStats{}
	res, err := WriteFile(context.Background(), hostView(t, dir), dst, Options{Compression: compression, CacheDir: cache, stats: st})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Result.SHA256 %s, the file's is %x", res.SHA256, sum)
	}
	return b, st
}

// dropPieces empties the cache of its pieces, keeping the stat index and
// the output records.
func dropPieces(t *testing.T, cache string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cache, "??", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestArtifactInPlaceServesItsPieces: with the artifact a pack left at the
// output unchanged, the next pack takes every piece from it, none from the
// cache: with the cached pieces gone, a re-pack with nothing changed
// compresses nothing and leaves the file as it was, and one after an edit
// compresses only the pieces of the edit. Every artifact is the cold pack's
// bytes, for each pieced compression.
func TestArtifactInPlaceServesItsPieces(t *testing.T) {
	for _, c := range []string{Gzip, Zstd, LZ4} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			dir, cache := hostTree(t), t.TempDir()
			// A file of its own piece in every compression.
			writeOld(t, filepath.Join(dir, "huge"), prose(rand.New(rand.NewPCG(3, 4)), int(archiveGroups.small)+1))
			settle()
			dst := filepath.Join(t.TempDir(), "a.cpio")
			first, _ := packTo(t, dir, dst, cache, c)
			ino := inodeOf(t, dst)
			dropPieces(t, cache)
			again, st := packTo(t, dir, dst, cache, c)
			if !bytes.Equal(again, first) || inodeOf(t, dst) != ino {
				t.Fatalf("a re-pack with nothing changed rewrote the artifact")
			}
			if st.compressed.Load() != 0 || st.read.Load() != 0 {
				t.Errorf("a re-pack with nothing changed compressed %d pieces and read %d chunks, want none", st.compressed.Load(), st.read.Load())
			}

			writeOld(t, filepath.Join(dir, "small/05"), []byte("changed, and shorter\n"))
			settle()
			dropPieces(t, cache)
			edited, st := packTo(t, dir, dst, cache, c)
			if !bytes.Equal(edited, pack(t, hostView(t, dir), c)) {
				t.Fatalf("the re-pack after an edit differs from a cold pack")
			}
			if n := st.compressed.Load(); n == 0 || n > 3 || st.reused.Load() == 0 {
				t.Errorf("after an edit, with no cached piece: %d pieces compressed, %d taken from the artifact; want the edit's (3 at most) compressed", n, st.reused.Load())
			}
		})
	}
}

// TestArtifactChangedInPlaceIsNotTrusted: an artifact written over in
// place after the pack, keeping its size (and its mtime, set back), is
// not what the pack's record says: the next pack finds it out and writes
// the right bytes again.
func TestArtifactChangedInPlaceIsNotTrusted(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	dst := filepath.Join(t.TempDir(), "a.cpio.gz")
	want, _ := packTo(t, dir, dst, cache, Gzip)
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), int64(len(want)/2)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, _ := packTo(t, dir, dst, cache, Gzip)
	if !bytes.Equal(got, want) {
		t.Fatalf("the artifact changed in place was kept as it was")
	}
}

// TestOutputRecordsArePruned: the records of artifacts count with the
// pieces, so packs to ever new paths (temporary folders, say) do not fill
// the cache with records past its limit.
func TestOutputRecordsArePruned(t *testing.T) {
	t.Parallel()
	dir, cache, out := hostTree(t), t.TempDir(), t.TempDir()
	for i := range 5 {
		dst := filepath.Join(out, fmt.Sprint(i), "a.cpio.gz")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteFile(context.Background(), hostView(t, dir), dst, Options{CacheDir: cache, CacheLimit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	records, err := filepath.Glob(filepath.Join(cache, "outputs", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(records) > 1 {
		t.Errorf("%d artifact records in a cache of 1 byte after 5 packs to new paths, want the last pack's at most", len(records))
	}
}

// overwriter is content that, when read, writes over the artifact at dst
// in place, keeping its size: a change while the pack runs.
type overwriter string

func (dst overwriter) Open() (overlay.Reader, error) {
	f, err := os.OpenFile(string(dst), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("XXXX"), 100); err != nil {
		return nil, err
	}
	return overlay.Bytes("the same bytes every time").Open()
}

// TestArtifactChangedDuringThePackIsRefused: the artifact at the output
// changes while a pack that takes it for unchanged runs. Its record vouched
// for it when the pack began; the pack must not report it as written.
func TestArtifactChangedDuringThePackIsRefused(t *testing.T) {
	t.Parallel()
	dir, cache := hostTree(t), t.TempDir()
	dst := filepath.Join(t.TempDir(), "a.cpio.gz")
	view := func(c overlay.Content) *overlay.View {
		return viewOf(t, overlay.Skeleton(), overlay.Mappings("", []overlay.Mapping{{Host: dir, Guest: "/src"}}),
			&overlay.Static{LayerName: "late", List: []overlay.Entry{{Path: "/zz", Type: overlay.Regular, Perm: 0o644, Size: 25, Content: c}}})
	}
	if _, err := WriteFile(context.Background(), view(overlay.Bytes("the same bytes every time")), dst, Options{CacheDir: cache}); err != nil {
		t.Fatal(err)
	}
	_, err := WriteFile(context.Background(), view(overwriter(dst)), dst, Options{CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), "changed while it was packed over") {
		t.Fatalf("a pack over an artifact written to meanwhile: %v, want it refused", err)
	}
}

// TestBigPieceIsNotHeldInMemory packs a file of 24 MiB and one of 88 MiB,
// each a zstd piece of its own: the larger takes no more memory than the
// smaller (the encoder's own state aside). Cold without a cache, into a
// cache, from the cache to a new path and from the artifact in place, the
// bytes are the same and zstd -t passes.
func TestBigPieceIsNotHeldInMemory(t *testing.T) {
	requireTool(t, "zstd", "zstd")
	allocs := map[int]uint64{}
	for _, size := range []int{24 << 20, 88 << 20} {
		dir, cache, out := t.TempDir(), t.TempDir(), t.TempDir()
		writeOld(t, filepath.Join(dir, "big"), prose(rand.New(rand.NewPCG(5, 5)), size))
		settle()
		var want []byte
		for i, c := range []string{"", cache, cache, cache} {
			dst := filepath.Join(out, fmt.Sprint(min(i, 2)), "a.cpio.zst")
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			v := hostView(t, dir)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := WriteFile(context.Background(), v, dst, Options{Compression: Zstd, CacheDir: c}); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			allocs[size] = max(allocs[size], after.TotalAlloc-before.TotalAlloc)
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = got
				if b, err := exec.Command("zstd", "-t", dst).CombinedOutput(); err != nil {
					t.Fatalf("zstd -t: %v\n%s", err, b)
				}
			} else if !bytes.Equal(got, want) {
				t.Errorf("%d MiB, pack %d: differs from the cold pack", size>>20, i)
			}
		}
		// A damaged big piece in the cache is compressed again.
		for _, f := range pieceFiles(t, cache) {
			if fi, err := os.Stat(f); err == nil && fi.Size() > bigPiece/8 {
				flipByte(t, f, fi.Size()/2)
			}
		}
		dst := filepath.Join(out, "3", "a.cpio.zst")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteFile(context.Background(), hostView(t, dir), dst, Options{Compression: Zstd, CacheDir: cache}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
			t.Errorf("%d MiB: the pack over a damaged cached piece differs from the cold pack", size>>20)
		}
	}
	if small, large := allocs[24<<20], allocs[88<<20]; large > small+8<<20 {
		t.Errorf("packs of a 24 MiB file allocated %d MiB at most, of an 88 MiB file %d MiB: the piece is held in memory", small>>20, large>>20)
	}
}

func flipByte(t *testing.T, p string, at int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[0] ^ 0xff}, at); err != nil {
		t.Fatal(err)
	}
}
