package packer

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// piecedLayer holds what makes many pieces in every layout: small files
// that group, files between the gzip and the archive thresholds, one
// larger than an archive group, and a hard-link group whose members lie
// far apart in the archive, each with data.
func piecedLayer() *overlay.Static {
	rng := rand.New(rand.NewPCG(21, 2))
	l := &overlay.Static{LayerName: "pieced"}
	file := func(p string, n int, link string) {
		l.List = append(l.List, overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o644, LinkID: link, Content: overlay.Bytes(prose(rng, n))})
	}
	for i := range 300 {
		file(fmt.Sprintf("/pieced/small/%03d", i), rng.IntN(24<<10), "")
	}
	for i := range 6 {
		file(fmt.Sprintf("/pieced/mid/%d", i), 200<<10+i*300<<10, "")
	}
	file("/pieced/large", int(archiveGroups.max)+chunkSize/3, "")
	shared := prose(rng, 300<<10)
	for _, p := range []string{"/a-linked", "/pieced/small/150x", "/zz-linked"} {
		l.List = append(l.List, overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o644, LinkID: "P", Content: overlay.Bytes(shared)})
	}
	return l
}

// treeProbe prints a digest of the names, sizes, link counts, modes and
// contents of what the kernel unpacked.
const treeProbe = `#!/bin/busybox sh
bb=/bin/busybox
cd /
echo tree: $($bb find a-linked zz-linked pieced lib usr etc -exec $bb stat -c '%n %s %h %a %u:%g %Y' {} + | $bb sort | $bb md5sum) $($bb find pieced lib usr etc zz-linked -type f -exec $bb md5sum {} + | $bb sort | $bb md5sum)
$bb poweroff -f
`

// TestKernelUnpacksPieces boots every pieced compression and checks that
// the kernel unpacks the tree it unpacks from the same archive written
// whole (uncompressed, one archive), that each passes its reference
// tool's test, and that zstd and xz are frames and streams of their own.
func TestKernelUnpacksPieces(t *testing.T) {
	kernel, busybox := bootInputs(t)
	boot := &overlay.Static{LayerName: "boot", List: []overlay.Entry{
		{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.HostFile(busybox)},
		{Path: "/init", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes(treeProbe)},
	}}
	v := viewOf(t, overlay.Skeleton(), richLayer(), piecedLayer(), boot)
	line := regexp.MustCompile(`tree: [0-9a-f]{32} - [0-9a-f]{32} -`)
	want := line.FindString(bootQEMU(t, kernel, writeArtifact(t, "whole.cpio", pack(t, v, None))))
	if want == "" {
		t.Fatalf("the probe printed no tree line for the uncompressed archive")
	}
	for _, c := range []struct {
		name, tool, pkg string
		segments        int // at least
	}{
		{Gzip, "gzip", "gzip", 1},
		{LZ4, "lz4", "lz4", 1},
		{Zstd, "zstd", "zstd", 4},
		{Xz, "xz", "xz-utils", 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireTool(t, c.tool, c.pkg)
			img := writeArtifact(t, "pieced."+c.name, pack(t, v, c.name))
			if out, err := exec.Command(c.tool, "-t", img).CombinedOutput(); err != nil {
				t.Errorf("%s -t: %v\n%s", c.tool, err, out)
			}
			_, segs, err := decode(bytesOf(t, img), io.Discard)
			if err != nil || len(segs) < c.segments {
				t.Errorf("fledge reads %d segments (%v), want at least %d", len(segs), err, c.segments)
			}
			if got := line.FindString(bootQEMU(t, kernel, img)); got != want {
				t.Errorf("the kernel unpacked %q, from the uncompressed archive %q", got, want)
			}
		})
	}
}

func bytesOf(t *testing.T, p string) io.Reader {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// TestEveryCodecReusesPieces re-packs after a change with each pieced
// compression, then after a large file is added among small ones: the
// bytes are the cold pack's, and only the pieces of the change are
// compressed again.
func TestEveryCodecReusesPieces(t *testing.T) {
	for _, c := range []string{Gzip, LZ4, Zstd, Xz} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			dir, cache := t.TempDir(), t.TempDir()
			rng := rand.New(rand.NewPCG(7, 8))
			for i := range 3 {
				writeOld(t, filepath.Join(dir, "bulk", fmt.Sprintf("%02d", i)), prose(rng, int(archiveGroups.small)+1))
			}
			for i := range 40 {
				writeOld(t, filepath.Join(dir, "small", fmt.Sprintf("%02d", i)), prose(rng, rng.IntN(40<<10)))
			}
			settle()
			packWith(t, hostView(t, dir), Options{Compression: c, CacheDir: cache})
			writeOld(t, filepath.Join(dir, "small", "07"), []byte("changed\n"))
			settle()
			warm, st := packWith(t, hostView(t, dir), Options{Compression: c, CacheDir: cache})
			if !bytes.Equal(warm, pack(t, hostView(t, dir), c)) {
				t.Fatalf("the re-pack differs from a cold pack")
			}
			// The trailer, padded from where it starts, is new too when the
			// pieces are not archives.
			want := int64(2)
			if pieceCodecs[c].archives {
				want = 1
			}
			if st.compressed.Load() != want || st.reused.Load() == 0 {
				t.Errorf("%d pieces compressed, %d reused: want %d compressed", st.compressed.Load(), st.reused.Load(), want)
			}
			// A large file added among the small ones is pieces of its
			// own: every other piece is reused.
			size := int(archiveGroups.small) + chunkSize/2
			writeOld(t, filepath.Join(dir, "small", "07a"), prose(rng, size))
			settle()
			before := st.reused.Load() + st.compressed.Load()
			warm, st = packWith(t, hostView(t, dir), Options{Compression: c, CacheDir: cache})
			if !bytes.Equal(warm, pack(t, hostView(t, dir), c)) {
				t.Fatalf("the re-pack after adding a large file differs from a cold pack")
			}
			own, trailer := int64(1), int64(0)
			if !pieceCodecs[c].archives {
				own, trailer = int64((size+chunkSize-1)/chunkSize), 1
			}
			if st.compressed.Load() != own+trailer || st.reused.Load() != before-trailer {
				t.Errorf("after adding a large file: %d pieces compressed, %d reused of %d; want %d compressed (%d of the file), the rest reused", st.compressed.Load(), st.reused.Load(), before, own+trailer, own)
			}
		})
	}
}
