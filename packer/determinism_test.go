package packer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// bulkLayer is compressible but not trivial data, large enough to span
// many gzip blocks and two zstd jobs (32 MiB each with an 8 MiB window), so parallel compression matters.
func bulkLayer(mib int) overlay.Layer {
	rng := rand.New(rand.NewPCG(1, 2))
	l := &overlay.Static{LayerName: "bulk"}
	for i := 0; i < mib; i++ {
		l.List = append(l.List, overlay.Entry{
			Path: fmt.Sprintf("/data/%03d", i), Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes(prose(rng, 1<<20)),
		})
	}
	return l
}

// prose is n bytes of source-like text: compressible, never repeating.
func prose(rng *rand.Rand, n int) []byte {
	words := []string{"func", "return", "err", "nil", "package", "import", "struct", "if", "for", "range"}
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "%s %d %s\n", words[rng.IntN(len(words))], rng.IntN(1000), words[rng.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// TestOutputIndependentOfGOMAXPROCS packs the same view with one, two and
// eight Ps: the bytes must not depend on the machine's core count.
func TestOutputIndependentOfGOMAXPROCS(t *testing.T) {
	v := viewOf(t, overlay.Skeleton(), richLayer(), bulkLayer(40))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []string{Gzip, Zstd, Xz, LZ4} {
		var first []byte
		for _, procs := range []int{1, 2, 8} {
			runtime.GOMAXPROCS(procs)
			got := pack(t, v, c)
			if first == nil {
				first = got
				continue
			}
			if !bytes.Equal(got, first) {
				t.Errorf("%s with GOMAXPROCS=%d: %d bytes differing from GOMAXPROCS=1 (%d bytes)", c, procs, len(got), len(first))
			}
		}
	}
}

// TestGzipHeaderCarriesNoNameOrTime checks the fixed gzip header fields
// (RFC 1952): flags without FNAME, MTIME 0.
func TestGzipHeaderCarriesNoNameOrTime(t *testing.T) {
	b := pack(t, viewOf(t, richLayer()), Gzip)
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		t.Fatalf("not a deflate gzip stream: % x", b[:3])
	}
	if b[3] != 0 {
		t.Errorf("gzip flags = %#x, want 0 (no name, comment or extra field)", b[3])
	}
	if !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip MTIME = % x, want zero", b[4:8])
	}
}

// TestSameViewSameBytes packs two views built separately from the same
// entries, and one where a time differs, which must change the output.
func TestSameViewSameBytes(t *testing.T) {
	a := pack(t, viewOf(t, overlay.Skeleton(), richLayer()), Gzip)
	b := pack(t, viewOf(t, overlay.Skeleton(), richLayer()), Gzip)
	if !bytes.Equal(a, b) {
		t.Fatalf("two packs of the same entries differ")
	}
	st := overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(), richLayer()}, Epoch: testEpoch.Add(time.Second)}
	v, err := st.View()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, pack(t, v, Gzip)) {
		t.Fatalf("a different epoch gave the same bytes: mtimes are not written")
	}
}
