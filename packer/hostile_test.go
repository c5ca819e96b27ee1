package packer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/volantvm/fledge/overlay"
)

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	z := gzip.NewWriter(&out)
	z.Write(b)
	z.Close()
	return out.Bytes()
}

func xzOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	z, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	z.Write(b)
	z.Close()
	return out.Bytes()
}

// rawRecord builds a record by hand, bypassing the Writer's checks, the way
// a hostile archive would. nameSize < 0 means "the honest size".
func rawRecord(name string, mode uint32, fileSize, nameSize int, data string) []byte {
	if nameSize < 0 {
		nameSize = len(name) + 1
	}
	b := fmt.Appendf(nil, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		1, mode, 0, 0, 1, 0, fileSize, 0, 0, 0, 0, nameSize, 0)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, make([]byte, padLen(int64(len(b)), 4))...)
	b = append(b, data...)
	return append(b, make([]byte, padLen(int64(len(b)), 4))...)
}

func trailer() []byte { return rawRecord(trailerName, 0, 0, -1, "") }

func archiveOf(recs ...[]byte) []byte { return bytes.Join(append(recs, trailer()), nil) }

// TestHostileArchives: every malformed or malicious input gives a clear
// error, never a panic, an escape from the image root or a huge allocation.
func TestHostileArchives(t *testing.T) {
	file := func(name string) []byte { return rawRecord(name, 0o100644, 1, -1, "x") }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"dot-dot", archiveOf(file("../etc/passwd")), `entry "../etc/passwd" (archive 1): path "../etc/passwd" contains ".."`},
		{"dot-dot inside", archiveOf(file("a/../../b")), `contains ".."`},
		{"NUL in name", archiveOf(rawRecord("a\x00b", 0o100644, 0, -1, "")), "is not a single NUL-terminated string"},
		{"name size 0", archiveOf(rawRecord("a", 0o100644, 0, 0, "")), "name size 0: expected 2 to 4096 bytes"},
		{"name size huge", archiveOf(rawRecord("a", 0o100644, 0, 1<<30, "")), "name size 1073741824"},
		{"absurd size", archiveOf(rawRecord("big", 0o100644, 0xFFFFFFFF, -1, "abc")), "big: the archive ends before its 4294967295 bytes of data: it is truncated"},
		{"truncated header", archiveOf(file("a"))[:50], "the archive ends before a header: it is truncated"},
		{"no trailer", file("a"), "the archive ends before a header"},
		{"bad hex", []byte(strings.Replace(string(archiveOf(file("a"))), "00000001", "0000000G", 1)), `header field "0000000G" is not hexadecimal`},
		{"junk", []byte("PK\x03\x04 not a cpio"), "not an initramfs: found bytes 50 4b 03 04 20"},
		{"junk after archive", append(archiveOf(file("a")), "junk"...), "at offset 240: found bytes 6a 75 6e 6b"},
		{"unaligned after archive", append(append(archiveOf(file("a")), 0, 0, 0), gzipOf(t, archiveOf(file("b")))...), `offset 243: the padding after the archive at offset 0 does not end on a multiple of 4 bytes; the kernel stops there ("broken padding")`},
		{"junk in gzip", gzipOf(t, append(archiveOf(file("a")), "junk"...)), "gzip data at offset 0: found"},
		{"truncated gzip", gzipOf(t, archiveOf(file("a")))[:40], "gzip data at offset 0:"},
		{"empty", nil, "no archive entries found"},
		{"truncated xz", []byte("\xfd7zXZ\x00rest"), "xz data at offset 0:"},
		{"junk in xz", xzOf(t, append(archiveOf(file("a")), "junk"...)), "xz data at offset 0: found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenArtifact(writeArtifact(t, "hostile", tc.data), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestSymlinkTargetWithNUL reads a link the way gen_init_cpio writes it,
// the size counting the target's NUL.
func TestSymlinkTargetWithNUL(t *testing.T) {
	a := openArtifactT(t, writeArtifact(t, "gen", archiveOf(rawRecord("bin", 0o40755, 0, -1, ""), rawRecord("bin/sh", 0o120777, 8, -1, "busybox\x00"))), "")
	ents, _ := a.Entries()
	if len(ents) != 2 || ents[1].Linkname != "busybox" {
		t.Fatalf("entries %+v, want bin/sh -> busybox", ents)
	}
}

// TestAbsoluteNamesStayInTheImage: the kernel unpacks "/etc/x" at the
// image root, and so does the reader; nothing is ever written to the host.
func TestAbsoluteNamesStayInTheImage(t *testing.T) {
	a := openArtifactT(t, writeArtifact(t, "abs", archiveOf(rawRecord("/etc", 0o40755, 0, -1, ""), rawRecord("/etc/x", 0o100644, 1, -1, "x"))), "")
	ents, _ := a.Entries()
	if len(ents) != 2 || ents[1].Path != "/etc/x" {
		t.Fatalf("entries %+v, want /etc/x", ents)
	}
}

// TestKernelDropsWhatItCannotMake: members the kernel's unpacker skips or
// fails to create do not stop the artifact from opening; they are simply
// not in the view (booted in cmd/fledge's TestKernelIsTheOracle).
func TestKernelDropsWhatItCannotMake(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"unknown type", rawRecord("odd", 0o070644, 0, -1, "")},
		{"missing parent", rawRecord("no/such/dir", 0o100644, 1, -1, "x")},
		{"folder with data", rawRecord("d", 0o40755, 1, -1, "x")},
		{"file at the root", rawRecord(".", 0o100644, 1, -1, "x")},
		{"symlink at the root", rawRecord("/", 0o120777, 1, -1, "x")},
		{"device at the root", rawRecord("./", 0o20644, 0, -1, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := openArtifactT(t, writeArtifact(t, "dropped", archiveOf(rawRecord("keep", 0o100644, 1, -1, "k"), tc.rec)), "")
			ents, _ := a.Entries()
			if len(ents) != 1 || ents[0].Path != "/keep" {
				t.Fatalf("entries %+v; want only /keep", ents)
			}
		})
	}
}

// The example: a file a, then a/b. The kernel keeps the file and
// drops a/b, and so does the view.
func TestFileThenChildKeepsTheFile(t *testing.T) {
	a := openArtifactT(t, writeArtifact(t, "child", archiveOf(rawRecord("a", 0o100644, 1, -1, "x"), rawRecord("a/b", 0o100644, 1, -1, "y"))), "")
	ents, _ := a.Entries()
	if len(ents) != 1 || ents[0].Path != "/a" || ents[0].Type != overlay.Regular {
		t.Fatalf("entries %+v; want the file /a alone", ents)
	}
}

// FuzzDecode feeds arbitrary bytes to the reader (plain, and inside gzip
// so the fuzzer reaches the decompressed path at once): it may refuse them
// but must not panic, hang or name a path outside the image root.
func FuzzDecode(f *testing.F) {
	plain := archiveOf(rawRecord("a", 0o100644, 1, -1, "x"), rawRecord("l", 0o120777, 1, -1, "a"))
	f.Add(plain)
	f.Add(archiveOf(rawRecord(".", 0o40755, 0, -1, ""), rawRecord("dev/c", 0o20600, 0, -1, "")))
	f.Add(append(append(plain, 0, 0, 0, 0), gzipOf(f, plain)...))
	f.Add(pack(f, viewOf(f, richLayer()), Zstd))
	f.Add(pack(f, viewOf(f, richLayer()), LZ4))
	for _, tool := range standardTools[1:5] { // bzip2, lzma, xz, lzo
		requireTool(f, tool.compress[0], tool.pkg)
		f.Add(append(run(f, plain, tool.compress...), plain...))
	}
	f.Add(archiveOf(rawRecord("etc/a..b", 0o100644, 1, -1, "x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, gzipOf(t, data)} {
			k := &sink{}
			ms, _, err := decode(bytes.NewReader(b), k)
			if err != nil {
				continue
			}
			stream, _, _ := k.finish()
			ents, err := entries(ms, stream, "artifact", "fuzz")
			if err != nil {
				continue
			}
			for _, e := range ents {
				if clean, err := overlay.CleanPath(e.Path); err != nil || clean != e.Path {
					t.Fatalf("entry path %q is not a clean path inside the image root", e.Path)
				}
			}
		}
	})
}

func bufioReader(b []byte) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), readBuf)
}

// TestDecompressionBombRefused: an artifact whose stream outgrows both
// the floor and maxRatio times its own size is refused with a clear error,
// and nothing is left in the cache; a normal artifact opens.
func TestDecompressionBombRefused(t *testing.T) {
	// Past memLimit, so the refusal happens while writing the cache file.
	old := minStreamLimit
	minStreamLimit = memLimit + 1<<20
	t.Cleanup(func() { minStreamLimit = old })
	zeros := string(make([]byte, memLimit+8<<20))
	bomb := gzipOf(t, archiveOf(rawRecord("zeros", 0o100644, len(zeros), -1, zeros)))
	if int64(len(bomb))*maxRatio >= minStreamLimit {
		t.Fatalf("the test bomb (%d bytes) does not compress past the ratio", len(bomb))
	}
	dir := t.TempDir()
	cache := t.TempDir()
	p := filepath.Join(dir, "bomb.cpio.gz")
	if err := os.WriteFile(p, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenArtifact(p, cache)
	if err == nil || !strings.Contains(err.Error(), "refusing what looks like a decompression bomb") {
		t.Fatalf("err = %v, want a decompression-bomb refusal", err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "streams", "*"))
	if len(left) != 0 {
		t.Errorf("the refused stream left %v in the cache", left)
	}
	ok := gzipOf(t, archiveOf(rawRecord("small", 0o100644, 5, -1, "hello")))
	q := filepath.Join(dir, "ok.cpio.gz")
	if err := os.WriteFile(q, ok, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := OpenArtifact(q, cache)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}

// TestXzDictionaryAsTheStreamAsks: each xz stream gets the dictionary its
// header asks for (8 MiB for xz's default preset), not a fixed 128 MiB:
// the xz reader takes DictCap as a minimum, so an artifact of many tiny
// streams made every open allocate and clear gigabytes.
func TestXzDictionaryAsTheStreamAsks(t *testing.T) {
	requireTool(t, "xz", "xz-utils")
	stream := run(t, pack(t, viewOf(t, richLayer()), None), "xz", "--check=crc32", "-c")
	var art []byte
	for range 20 {
		art = append(art, stream...)
		art = append(art, make([]byte, padLen(int64(len(art)), 4))...)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := decode(bytes.NewReader(art), &sink{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// 20 streams of xz -6 need 20 × 8 MiB; the floor was 20 × 128 MiB.
	if got := (after.TotalAlloc - before.TotalAlloc) >> 20; got > 20*8+100 {
		t.Errorf("reading 20 xz streams of %d bytes allocated %d MiB", len(stream), got)
	}
}
