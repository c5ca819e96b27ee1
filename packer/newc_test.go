package packer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/volantvm/fledge/overlay"
)

// TestHeaderLayout pins one record byte for byte against the newc format:
// 13 fields of 8 upper-case hex digits, the name with its NUL padded to a
// multiple of 4 from the header start (110 + 7 bytes, so 3 NULs more), the
// data padded to 4.
func TestHeaderLayout(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	h := Header{Name: "bin/sh", Ino: 7, Mode: 0o100755, UID: 1, GID: 2, NLink: 1, MTime: 0x5F5E100, Size: 3, RDevMajor: 0xFFF, RDevMinor: 0xFFFFF}
	if err := w.WriteRecord(h, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000007" + "000081ED" + "00000001" + "00000002" + "00000001" + "05F5E100" +
		"00000003" + "00000000" + "00000000" + "00000FFF" + "000FFFFF" + "00000007" + "00000000" +
		"bin/sh\x00" + "\x00\x00\x00" + "abc\x00"
	if got := b.String(); got != want {
		t.Fatalf("record:\n got %q\nwant %q", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len()%512 != 0 || !strings.Contains(b.String(), "TRAILER!!!\x00") {
		t.Fatalf("archive of %d bytes: want a TRAILER!!! record and 512-byte padding", b.Len())
	}
}

func TestHeaderRefusesWhatDoesNotFit(t *testing.T) {
	for _, tc := range []struct {
		h    Header
		want string
	}{
		{Header{Name: "big", Size: math.MaxUint32 + 1}, "big: size 4294967296 bytes does not fit"},
		{Header{Name: "neg", Size: -1}, "neg: size -1 bytes"},
		{Header{Name: "uid", UID: math.MaxUint32 + 1}, "uid: owner 4294967296:0 does not fit"},
		{Header{Name: "gid", GID: -1}, "gid: owner 0:-1 does not fit"},
		{Header{Name: "major", RDevMajor: 4096}, "major: device 4096,0 is beyond the kernel's limits"},
		{Header{Name: "minor", RDevMinor: 1 << 20}, "minor: device 0,1048576 is beyond"},
		{Header{Name: "old", MTime: -1}, "old: mtime -1 does not fit"},
		{Header{Name: "late", MTime: math.MaxUint32 + 1}, "late: mtime 4294967296 does not fit"},
		{Header{Name: "ino", Ino: math.MaxUint32 + 1}, "ino: inode number 4294967296"},
		{Header{Name: "a\x00b"}, "contains a NUL byte"},
		{Header{Name: ""}, "name is 0 bytes"},
		{Header{Name: strings.Repeat("x", 4096)}, "name is 4096 bytes"},
	} {
		var b bytes.Buffer
		err := NewWriter(&b).WriteRecord(tc.h, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteRecord(%+v) = %v, want an error containing %q", tc.h, err, tc.want)
		}
		if b.Len() != 0 {
			t.Errorf("%q: %d bytes written before the refusal", tc.h.Name, b.Len())
		}
	}
}

// TestShortContentIsAnError: a file that shrank between Open and the copy
// must not yield a record whose header lies about its size.
func TestShortContentIsAnError(t *testing.T) {
	err := NewWriter(io.Discard).WriteRecord(Header{Name: "f", Mode: 0o100644, Size: 10}, strings.NewReader("short"))
	if err == nil || !strings.Contains(err.Error(), "ended after 5 of the 10 bytes") {
		t.Fatalf("got %v, want a short-content error", err)
	}
}

// TestFileOver4GiBRefusedBeforeData maps a sparse 4 GiB host file: the
// refusal must come from the header check, before any data is read.
func TestFileOver4GiBRefusedBeforeData(t *testing.T) {
	host := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	v := viewOf(t, &overlay.Static{LayerName: "m", List: []overlay.Entry{
		{Path: "/huge", Type: overlay.Regular, Perm: 0o644, Content: overlay.HostFile(host)},
	}})
	cw := &countingWriter{w: io.Discard}
	err = Write(context.Background(), v, cw, Options{Compression: None})
	if err == nil || !strings.Contains(err.Error(), "huge: size 4294967296 bytes does not fit the newc format") {
		t.Fatalf("got %v, want the 4 GiB refusal naming huge", err)
	}
	if cw.n > 1<<20 {
		t.Fatalf("%d bytes written before the refusal: the data was copied", cw.n)
	}
}

// TestSecondReaderAgrees reads the packed archive with cavaliergopher/cpio,
// an independent reader, and with our scanner, which also shows where the
// hard-link data went: with the last member only.
func TestSecondReaderAgrees(t *testing.T) {
	v := viewOf(t, overlay.Skeleton(), richLayer())
	raw := pack(t, v, None)
	r := cpio.NewReader(bytes.NewReader(raw))
	var nodes []*overlay.Node
	v.Walk(func(n *overlay.Node) error { nodes = append(nodes, n); return nil })
	inos := map[int64]bool{}
	for i := 0; ; i++ {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			if i != len(nodes) {
				t.Fatalf("cavaliergopher/cpio read %d records, the view has %d", i, len(nodes))
			}
			break
		}
		if err != nil {
			t.Fatalf("cavaliergopher/cpio: record %d: %v", i, err)
		}
		n := nodes[i]
		if h.Name != archiveName(n.Path) || uint32(h.Mode) != n.UnixMode() || h.Linkname != n.Linkname ||
			h.Uid != n.UID || h.Guid != n.GID || h.ModTime.Unix() != v.MTime(n).Unix() {
			t.Errorf("record %d = %+v, want %s mode %#o", i, h, n.Path, n.UnixMode())
		}
		if n.LinkID == "" && inos[h.Inode] {
			t.Errorf("%s reuses inode %d", n.Path, h.Inode)
		}
		inos[h.Inode] = true
	}
	s := &scanner{src: bufioReader(raw), sink: io.Discard}
	if err := s.archives(); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, m := range s.members {
		sizes[m.Name] = m.Size
	}
	if sizes["lib/a"] != 0 || sizes["lib/b"] != 0 || sizes["usr/c"] != int64(len("linked data\n")) {
		t.Errorf("hard-link sizes a=%d b=%d c=%d: want the data with the last member only", sizes["lib/a"], sizes["lib/b"], sizes["usr/c"])
	}
}
