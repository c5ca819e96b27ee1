package packer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

func writeArtifact(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func openArtifactT(t *testing.T, p, cache string) *Artifact {
	t.Helper()
	a, err := OpenArtifact(p, cache)
	if err != nil {
		t.Fatalf("OpenArtifact: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// comparable is what must survive a round trip: everything but provenance,
// the content's representation and the view's own LinkID naming.
type comparable struct {
	Path, Type, Linkname string
	Perm                 uint32
	UID, GID             int
	Size                 int64
	Major, Minor         uint32
	MTime                time.Time
	Data                 string
	Linked               bool
}

func summarize(t *testing.T, v *overlay.View) []comparable {
	t.Helper()
	var out []comparable
	v.Walk(func(n *overlay.Node) error {
		c := comparable{Path: n.Path, Type: n.Type.String(), Linkname: n.Linkname, Perm: n.UnixMode(),
			UID: n.UID, GID: n.GID, Major: n.Major, Minor: n.Minor, MTime: v.MTime(n).UTC(), Linked: n.LinkID != ""}
		if n.Type == overlay.Regular && n.Content != nil {
			c.Data = string(readAll(t, n.Content))
			c.Size = int64(len(c.Data))
		}
		out = append(out, c)
		return nil
	})
	return out
}

// TestRoundTrip packs a view, opens the artifact as a layer and expects the
// same view back, for every compression, and the same bytes when that
// layer is packed again.
func TestRoundTrip(t *testing.T) {
	v := viewOf(t, overlay.Skeleton(), richLayer())
	want := summarize(t, v)
	for _, c := range []string{None, Gzip, Zstd, Xz} {
		packed := pack(t, v, c)
		a := openArtifactT(t, writeArtifact(t, "art", packed), t.TempDir())
		got := summarize(t, viewOf(t, a))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", c, got, want)
		}
		if !bytes.Equal(pack(t, viewOf(t, a), c), packed) {
			t.Errorf("%s: re-packing the opened artifact changed its bytes", c)
		}
		ents, _ := a.Entries()
		if a.Name() != "artifact" || ents[0].Source == "" || ents[0].Layer != "artifact" {
			t.Errorf("%s: provenance %q/%q/%q", c, a.Name(), ents[0].Layer, ents[0].Source)
		}
	}
}

// TestConcatenatedEarlyAndMain builds the kernel's form: an uncompressed
// early archive, zero padding, then a gzip archive. The later archive wins
// a path, as when the kernel unpacks them in order.
func TestConcatenatedEarlyAndMain(t *testing.T) {
	early := pack(t, viewOf(t, &overlay.Static{LayerName: "early", List: []overlay.Entry{
		{Path: "/kernel/x86/microcode/GenuineIntel.bin", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("ucode")},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("early")},
		{Path: "/lib/x", Type: overlay.Regular, Perm: 0o644, LinkID: "x", Content: overlay.Bytes("early link")},
		{Path: "/lib/y", Type: overlay.Regular, Perm: 0o644, LinkID: "x", Content: overlay.Bytes("early link")},
	}}), None)
	main := pack(t, viewOf(t, overlay.Skeleton(), richLayer(), &overlay.Static{LayerName: "main", List: []overlay.Entry{
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o600, Content: overlay.Bytes("main")},
	}}), Gzip)
	art := append(append(early, make([]byte, 1024)...), main...)
	v := viewOf(t, openArtifactT(t, writeArtifact(t, "initrd", art), ""))
	for p, want := range map[string]string{
		"/kernel/x86/microcode/GenuineIntel.bin": "ucode", "/etc/motd": "main", "/usr/c": "linked data\n", "/lib/y": "early link",
	} {
		n, ok := v.Get(p)
		if !ok || string(readAll(t, n.Content)) != want {
			t.Errorf("%s: want %q (found %v)", p, want, ok)
		}
	}
	if n, _ := v.Get("/etc/motd"); n.Perm != 0o600 {
		t.Errorf("/etc/motd mode %v: the early archive's entry won", n.Perm)
	}
	x, _ := v.Get("/lib/x")
	c, _ := v.Get("/usr/c")
	if x.LinkID == "" || x.LinkID == c.LinkID {
		t.Errorf("link groups of different archives merged: %q and %q", x.LinkID, c.LinkID)
	}
}

// TestReadsGNUCpioOutput reads what GNU cpio writes, including a hard-link
// group whose data sits with the last member.
func TestReadsGNUCpioOutput(t *testing.T) {
	requireTool(t, "cpio", "cpio")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d"), 0o750)
	os.WriteFile(filepath.Join(dir, "d/f"), []byte("hello"), 0o640)
	os.Link(filepath.Join(dir, "d/f"), filepath.Join(dir, "g"))
	os.Symlink("d/f", filepath.Join(dir, "s"))
	cmd := exec.Command("cpio", "-o", "-H", "newc")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("d\nd/f\ng\ns\n")
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -o: %v", err)
	}
	v := viewOf(t, openArtifactT(t, writeArtifact(t, "gnu.cpio", raw), ""))
	f, _ := v.Get("/d/f")
	g, _ := v.Get("/g")
	s, _ := v.Get("/s")
	if f == nil || g == nil || s == nil {
		t.Fatalf("missing entries: %v %v %v", f, g, s)
	}
	if string(readAll(t, f.Content)) != "hello" || string(readAll(t, g.Content)) != "hello" || f.LinkID == "" || f.LinkID != g.LinkID {
		t.Errorf("hard links: f=%q g=%q ids %q %q", readAll(t, f.Content), readAll(t, g.Content), f.LinkID, g.LinkID)
	}
	if s.Linkname != "d/f" || f.Perm != 0o640 {
		t.Errorf("symlink %q, file mode %v", s.Linkname, f.Perm)
	}
}

// TestLargeStreamIsCached: a stream over 16 MiB lands in the cache under
// the artifact's sha256 and the next open reuses it instead of
// decompressing again.
func TestLargeStreamIsCached(t *testing.T) {
	v := viewOf(t, bulkLayer(20))
	art := writeArtifact(t, "big.cpio.zst", pack(t, v, Zstd))
	cache := t.TempDir()
	a := openArtifactT(t, art, cache)
	b, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(b))
	stream := filepath.Join(cache, "streams", sum+".cpio")
	fi, err := os.Stat(stream)
	if err != nil || fi.Size() < 20<<20 {
		t.Fatalf("stream cache %s: %v", stream, err)
	}
	checkOnly(t, filepath.Dir(stream), sum+".cpio")
	// Mark the cache so that reuse is visible: an open that decompressed
	// again would serve the original bytes.
	n, _ := viewOf(t, a).Get("/data/000")
	sec := n.Content.(overlay.Section)
	f, err := os.OpenFile(stream, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("CACHED"), sec.Off)
	f.Close()
	n2, _ := viewOf(t, openArtifactT(t, art, cache)).Get("/data/000")
	if got := readAll(t, n2.Content); !bytes.HasPrefix(got, []byte("CACHED")) {
		t.Fatalf("second open read %q…: the cache was not reused", got[:6])
	}
}

func TestIsArtifact(t *testing.T) {
	v := viewOf(t, richLayer())
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"plain", pack(t, v, None), true},
		{"gzip", pack(t, v, Gzip), true},
		{"zstd", pack(t, v, Zstd), true},
		{"xz", pack(t, v, Xz), true},
		{"xz junk", []byte("\xfd7zXZ\x00rest"), false},
		{"recipe", []byte("version = \"1\"\n"), false},
		{"gzip of text", gzipOf(t, []byte("not an archive")), false},
		{"empty", nil, false},
	} {
		if got := IsArtifact(writeArtifact(t, "f", tc.data)); got != tc.want {
			t.Errorf("IsArtifact(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if IsArtifact(filepath.Join(t.TempDir(), "absent")) {
		t.Errorf("IsArtifact of a missing file is true")
	}
}

// TestCompressedThenMore: a compressed archive written by the gzip or zstd
// CLI (many blocks, checksums), zero padding, then an uncompressed archive,
// which the kernel also accepts. The decompressor must stop where its data
// ends, not swallow what follows.
func TestCompressedThenMore(t *testing.T) {
	late := pack(t, viewOf(t, &overlay.Static{LayerName: "late", List: []overlay.Entry{
		{Path: "/data/001", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("late")},
	}}), None)
	for _, tool := range [][]string{{"gzip", "-n", "-c"}, {"zstd", "-q", "-c", "--check"}} {
		requireTool(t, tool[0], tool[0])
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = bytes.NewReader(pack(t, viewOf(t, bulkLayer(2)), None))
		compressed, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool[0], err)
		}
		// Padded so that the archive starts at a multiple of 4 bytes, the
		// only place the kernel takes one.
		art := append(append(compressed, make([]byte, 300+(4-len(compressed)%4)%4)...), late...)
		v := viewOf(t, openArtifactT(t, writeArtifact(t, "a", art), ""))
		n0, _ := v.Get("/data/000")
		n1, _ := v.Get("/data/001")
		if n0 == nil || n0.Size < 1<<20 || n1 == nil || string(readAll(t, n1.Content)) != "late" {
			t.Errorf("after %s data: /data/000 %v, /data/001 %v", tool[0], n0, n1)
		}
	}
}

// TestStreamCacheMatchesItsName: the stream cached under an artifact's
// sha256 is decompressed from exactly those bytes, even while the artifact
// is being replaced by rename, as WriteFile does when packing over it.
func TestStreamCacheMatchesItsName(t *testing.T) {
	dir := t.TempDir()
	var sums [2]string
	for i := range sums {
		marker := &overlay.Static{LayerName: "marker", List: []overlay.Entry{
			{Path: "/version", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes(fmt.Sprint(i))},
		}}
		b := pack(t, viewOf(t, bulkLayer(17), marker), Zstd)
		sums[i] = fmt.Sprintf("%x", sha256.Sum256(b))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	art := filepath.Join(dir, "a.cpio.zst")
	if err := os.Link(filepath.Join(dir, "0"), art); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			tmp := filepath.Join(dir, "next")
			if err := os.Link(filepath.Join(dir, fmt.Sprint(i%2)), tmp); err != nil {
				done <- err
				return
			}
			if err := os.Rename(tmp, art); err != nil {
				done <- err
				return
			}
		}
	}()
	var caches []string
	for range 12 {
		cache := t.TempDir()
		a, err := OpenArtifact(art, cache)
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		caches = append(caches, cache)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, cache := range caches {
		streams, _ := filepath.Glob(filepath.Join(cache, "streams", "*.cpio"))
		for _, s := range streams {
			n, _ := viewOf(t, openArtifactT(t, s, "")).Get("/version")
			if n == nil {
				t.Fatalf("%s has no /version", s)
			}
			want := sums[0]
			if string(readAll(t, n.Content)) == "1" {
				want = sums[1]
			}
			if name := strings.TrimSuffix(filepath.Base(s), ".cpio"); name != want {
				t.Errorf("stream cache %s holds the stream of the artifact with sha256 %s", name, want)
			}
		}
	}
}

// TestArtifactThatIsNoFile: a FIFO or a device named as an artifact is
// refused at once, not waited on or read forever.
func TestArtifactThatIsNoFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.cpio.gz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() {
			_, err := OpenArtifact(p, t.TempDir())
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("OpenArtifact(%s) = %v, want a not-a-regular-file error", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("OpenArtifact(%s) hangs", p)
		}
		if IsArtifact(p) {
			t.Errorf("IsArtifact(%s) is true", p)
		}
	}
}
