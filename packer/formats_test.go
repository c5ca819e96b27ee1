package packer

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// standardTools are the compressors an initramfs is made with, each with
// its decompressing command line and the Debian package that has it.
var standardTools = []struct {
	name, pkg    string
	compress, dc []string
}{
	{"gzip", "gzip", []string{"gzip", "-n", "-c"}, []string{"gzip", "-dc"}},
	{"bzip2", "bzip2", []string{"bzip2", "-c"}, []string{"bzip2", "-dc"}},
	{"lzma", "xz-utils", []string{"xz", "--format=lzma", "-c"}, []string{"xz", "--format=lzma", "-dc"}},
	{"xz", "xz-utils", []string{"xz", "--check=crc32", "-c"}, []string{"xz", "-dc"}},
	{"lzo", "lzop", []string{"lzop", "-c"}, []string{"lzop", "-dc"}},
	{"lz4", "lz4", []string{"lz4", "-l", "-c"}, []string{"lz4", "-dc"}},
	{"zstd", "zstd", []string{"zstd", "-q", "-c"}, []string{"zstd", "-dc"}},
}

func run(t testing.TB, in []byte, argv ...string) []byte {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return out
}

// cpioNames lists the names GNU cpio reads from one uncompressed archive,
// as paths in the image.
func cpioNames(t *testing.T, archive []byte) []string {
	t.Helper()
	var names []string
	for _, n := range strings.Split(strings.TrimSpace(gnuCpio(t, archive, "", "-it")), "\n") {
		names = append(names, "/"+strings.TrimPrefix(strings.TrimPrefix(n, "."), "/"))
	}
	return names
}

func viewPaths(v *overlay.View) []string {
	var paths []string
	v.Walk(func(n *overlay.Node) error { paths = append(paths, n.Path); return nil })
	return paths
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// TestStandardToolsListLikeGNUCpio compresses an archive (larger than one
// block of every format: lz4 8 MiB, bzip2 900 kB, lzop 256 KiB) with each
// standard tool, alone and behind an uncompressed early archive with zero
// padding, and lists it: the names must be those GNU cpio reads from the
// decompressed archives.
func TestStandardToolsListLikeGNUCpio(t *testing.T) {
	requireTool(t, "cpio", "cpio")
	early := pack(t, viewOf(t, &overlay.Static{LayerName: "early", List: []overlay.Entry{
		{Path: "/kernel/x86/microcode/GenuineIntel.bin", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("ucode")},
	}}), None)
	main := pack(t, viewOf(t, overlay.Skeleton(), richLayer(), bulkLayer(9)), None)
	earlyNames := cpioNames(t, early)
	for _, tool := range standardTools {
		t.Run(tool.name, func(t *testing.T) {
			requireTool(t, tool.compress[0], tool.pkg)
			compressed := run(t, main, tool.compress...)
			mainNames := cpioNames(t, run(t, compressed, tool.dc...))
			for _, tc := range []struct {
				name string
				art  []byte
				want []string
			}{
				{"alone", compressed, mainNames},
				{"behind early", slices.Concat(early, make([]byte, 512), compressed), append(slices.Clone(earlyNames), mainNames...)},
			} {
				v := viewOf(t, openArtifactT(t, writeArtifact(t, "initrd", tc.art), ""))
				if got := viewPaths(v); !sameSet(got, tc.want) {
					t.Errorf("%s: lists %d names, GNU cpio %d:\n%v\n%v", tc.name, len(got), len(tc.want), got, tc.want)
				}
				if n, ok := v.Get("/data/008"); !ok || n.Size < 1<<20 {
					t.Errorf("%s: /data/008 missing or short: %v", tc.name, n)
				}
			}
		})
	}
}

// TestCompressedThenMoreEveryFormat: after every format but lz4 (whose
// frame runs to the end of the image, as the kernel reads it), zero
// padding and another archive are read on.
func TestCompressedThenMoreEveryFormat(t *testing.T) {
	late := pack(t, viewOf(t, &overlay.Static{LayerName: "late", List: []overlay.Entry{
		{Path: "/late", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("late")},
	}}), None)
	main := pack(t, viewOf(t, bulkLayer(2)), None)
	for _, tool := range standardTools {
		if tool.name == "lz4" {
			continue
		}
		requireTool(t, tool.compress[0], tool.pkg)
		compressed := run(t, main, tool.compress...)
		// The kernel takes an uncompressed archive only at a multiple of
		// 4 bytes into the image.
		for _, pad := range []int{0, 4, 300} {
			pad += (4 - len(compressed)%4) % 4
			art := slices.Concat(compressed, make([]byte, pad), late)
			v := viewOf(t, openArtifactT(t, writeArtifact(t, "a", art), ""))
			n, ok := v.Get("/late")
			if d, _ := v.Get("/data/001"); !ok || d == nil || string(readAll(t, n.Content)) != "late" {
				t.Errorf("%s then %d zeros then an archive: /late %v, /data/001 %v", tool.name, pad, n, d)
			}
		}
	}
}

// TestMultiMemberAndMultiFrame: gzip members, xz streams and zstd frames
// one after the other, each an archive, are read as the kernel reads them.
func TestMultiMemberAndMultiFrame(t *testing.T) {
	a := pack(t, viewOf(t, &overlay.Static{LayerName: "a", List: []overlay.Entry{
		{Path: "/a", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("a")},
	}}), None)
	b := pack(t, viewOf(t, &overlay.Static{LayerName: "b", List: []overlay.Entry{
		{Path: "/b", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("b")},
	}}), None)
	for _, tool := range [][]string{{"gzip", "-n", "-c"}, {"xz", "--check=crc32", "-c"}, {"zstd", "-q", "-c"}} {
		requireTool(t, tool[0], tool[0])
		art := slices.Concat(run(t, a, tool...), run(t, b, tool...))
		v := viewOf(t, openArtifactT(t, writeArtifact(t, "a", art), ""))
		if got := viewPaths(v); !slices.Equal(got, []string{"/", "/a", "/b"}) {
			t.Errorf("two %s streams: %v", tool[0], got)
		}
	}
}

// TestLZ4WrittenForTheKernel: what fledge writes is the legacy frame
// (`lz4 -t` takes it, blocks of 8 MiB), and lz4 decompresses it to the
// archive GNU cpio lists.
func TestLZ4WrittenForTheKernel(t *testing.T) {
	requireTool(t, "lz4", "lz4")
	requireTool(t, "cpio", "cpio")
	v := viewOf(t, overlay.Skeleton(), richLayer(), bulkLayer(17))
	art := writeArtifact(t, "a.cpio.lz4", pack(t, v, LZ4))
	run(t, nil, "lz4", "-t", art)
	raw := run(t, nil, "lz4", "-dc", art)
	if want := pack(t, v, None); !bytes.Equal(raw, want) {
		t.Fatalf("lz4 -dc gives %d bytes, the uncompressed pack %d", len(raw), len(want))
	}
	checkListing(t, v, gnuCpio(t, raw, "", "-itv"))
	got := viewOf(t, openArtifactT(t, art, ""))
	if !sameSet(viewPaths(got), viewPaths(v)) {
		t.Errorf("reading back: %v", viewPaths(got))
	}
}

// TestLZ4TrailingBytesRefused: the kernel reads lz4 blocks to the end of
// the image, so a size word appended after the frame (as for a compressed
// kernel) or zero padding is refused, naming what was found.
func TestLZ4TrailingBytesRefused(t *testing.T) {
	frame := pack(t, viewOf(t, richLayer()), LZ4)
	for _, tc := range []struct {
		name  string
		tail  []byte
		wants string
	}{
		{"size word", []byte{0x10, 0x27, 0, 0}, "runs past the end"},
		{"zero padding", make([]byte, 8), "lz4 block size 0"},
		{"three bytes", []byte{1, 2, 3}, "stray bytes"},
	} {
		_, err := OpenArtifact(writeArtifact(t, "a", slices.Concat(frame, tc.tail)), "")
		if err == nil || !strings.Contains(err.Error(), tc.wants) {
			t.Errorf("lz4 then %s: %v, want an error with %q", tc.name, err, tc.wants)
		}
	}
}

// TestUnknownFormatNamesItsBytes: a file in no known format is refused
// with one line that shows its first bytes.
func TestUnknownFormatNamesItsBytes(t *testing.T) {
	junk := make([]byte, 4096)
	rand.Read(junk)
	junk[0], junk[1] = 0xde, 0xad // never a magic
	_, err := OpenArtifact(writeArtifact(t, "x.cpio.gz", junk), "")
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "found bytes de ad") {
		t.Fatalf("random file: %v", err)
	}
	if IsArtifact(writeArtifact(t, "x", junk)) {
		t.Errorf("IsArtifact of random bytes is true")
	}
}

// TestSegments lists early + zstd + gzip: three segments at the offsets
// where each starts, with their sizes and entry counts.
func TestSegments(t *testing.T) {
	early := pack(t, viewOf(t, &overlay.Static{LayerName: "early", List: []overlay.Entry{
		{Path: "/kernel/x86/microcode/GenuineIntel.bin", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("ucode")},
	}}), None)
	mid := viewOf(t, richLayer())
	// One zstd stream: in pieces, the hard links of richLayer would be a
	// frame, and a segment, of their own.
	zst, _ := packWith(t, mid, Options{Compression: Zstd, WholeStream: true})
	gz := pack(t, viewOf(t, overlay.Skeleton()), Gzip)
	art := slices.Concat(early, make([]byte, 12), zst, gz)
	segs, err := Segments(writeArtifact(t, "a", art))
	if err != nil {
		t.Fatal(err)
	}
	// The early archive ends with its trailer; the zeros after it pad.
	archive := (len(bytes.TrimRight(early, "\x00")) + 1 + 3) &^ 3
	want := []Segment{
		{Offset: 0, Compression: None, CompressedBytes: int64(archive), Bytes: int64(archive), Entries: 5},
		{Offset: int64(len(early) + 12), Compression: Zstd, CompressedBytes: int64(len(zst)), Bytes: int64(len(pack(t, mid, None))), Entries: len(viewPaths(mid))},
		{Offset: int64(len(early) + 12 + len(zst)), Compression: Gzip, CompressedBytes: int64(len(gz)), Bytes: int64(len(pack(t, viewOf(t, overlay.Skeleton()), None))), Entries: len(viewPaths(viewOf(t, overlay.Skeleton())))},
	}
	if !slices.Equal(segs, want) {
		t.Errorf("segments:\n got %+v\nwant %+v", segs, want)
	}
}
