package packer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

func TestWriteFileReportsWhatItWrote(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out.cpio.gz")
	res, err := WriteFile(context.Background(), viewOf(t, richLayer()), dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if res.Path != dst || res.Size != int64(len(b)) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Result %+v, file has %d bytes, sha256 %x", res, len(b), sum)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Fatalf("artifact mode %v, want 0644", fi.Mode().Perm())
	}
	checkOnly(t, filepath.Dir(dst), "out.cpio.gz")
}

// TestUnchangedArtifactIsKept: packing the same view again leaves the
// artifact's file in place (no rename, no second fsync of new bytes), and
// any difference in bytes, mode or links replaces it as before.
func TestUnchangedArtifactIsKept(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.cpio.gz")
	v := viewOf(t, richLayer())
	first, err := WriteFile(context.Background(), v, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	again, err := WriteFile(context.Background(), v, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again != first || inode() != before {
		t.Fatalf("a pack of the same view replaced the artifact (inode %d, now %d; results %+v, %+v)", before, inode(), first, again)
	}
	checkOnly(t, dir, "out.cpio.gz")
	b, _ := os.ReadFile(dst)
	for name, spoil := range map[string]func(){
		"other bytes": func() { b[len(b)-1] ^= 1; os.WriteFile(dst, b, 0o644); b[len(b)-1] ^= 1 },
		"other mode":  func() { os.Chmod(dst, 0o600) },
		"longer":      func() { os.WriteFile(dst, append(b[:len(b):len(b)], 0), 0o644) },
		"shorter":     func() { os.WriteFile(dst, b[:len(b)-1], 0o644) },
		"hard-linked": func() { os.Link(dst, filepath.Join(t.TempDir(), "link")) },
	} {
		spoil()
		was := inode()
		if _, err := WriteFile(context.Background(), v, dst, Options{}); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(dst)
		if fi, _ := os.Stat(dst); inode() == was || !bytes.Equal(got, b) || fi.Mode().Perm() != 0o644 {
			t.Fatalf("%s: the artifact was kept (inode %d, now %d; mode %v)", name, was, inode(), fi.Mode())
		}
		checkOnly(t, dir, "out.cpio.gz")
	}
}

type failingContent struct{}

func (failingContent) Open() (overlay.Reader, error) { return nil, errors.New("disk on fire") }

// cancelling is content that cancels the pack when it is read, as a user
// pressing ^C in the middle of a large file would.
type cancelling context.CancelFunc

func (c cancelling) Open() (overlay.Reader, error) {
	c()
	return overlay.Bytes("x").Open()
}

// TestFailedPackLeavesNothing: a content that cannot be opened and a
// cancelled context both fail the pack, keep the previous artifact as it
// was and leave no temporary file.
func TestFailedPackLeavesNothing(t *testing.T) {
	broken := &overlay.Static{LayerName: "broken", List: []overlay.Entry{
		{Path: "/zz/late", Type: overlay.Regular, Perm: 0o644, Content: failingContent{}},
	}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	midway, stop := context.WithCancel(context.Background())
	defer stop()
	interrupted := &overlay.Static{LayerName: "i", List: []overlay.Entry{
		{Path: "/a", Type: overlay.Regular, Perm: 0o644, Content: cancelling(stop)},
		{Path: "/b", Type: overlay.Regular, Perm: 0o644},
	}}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		v    *overlay.View
		want string
	}{
		{"open fails", context.Background(), viewOf(t, richLayer(), broken), "/zz/late: opening content from layer broken: disk on fire"},
		{"cancelled", cancelled, viewOf(t, richLayer()), "packing stopped at /: context canceled"},
		// The records are prepared on all cores: the pack stops at a
		// record, which one depends on the order the cores took them.
		{"cancelled midway", midway, viewOf(t, interrupted), ": context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.cpio.gz")
			if err := os.WriteFile(dst, []byte("previous"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := WriteFile(tc.ctx, tc.v, dst, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if b, _ := os.ReadFile(dst); string(b) != "previous" {
				t.Fatalf("the previous artifact became %d bytes", len(b))
			}
			checkOnly(t, dir, "out.cpio.gz")
		})
	}
}

func TestUnknownCompressionIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := WriteFile(context.Background(), viewOf(t, richLayer()), filepath.Join(dir, "x"), Options{Compression: "lzo"})
	if err == nil || !strings.Contains(err.Error(), `compression "lzo" is not supported; use gzip, zstd, xz, lz4 or none`) {
		t.Fatalf("got %v", err)
	}
	checkOnly(t, dir)
}

// checkOnly wants dir to hold exactly the named files.
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// TestCopyRangeSaysWhenItFallsShort: a source that ends before the bytes
// asked for (a piece file cut since it was checked, say) is an error, not
// a short copy that would shift every byte after it in the artifact.
func TestCopyRangeSaysWhenItFallsShort(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := copyRange(s, 4, d, 6); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "456789" {
		t.Fatalf("copied %q, want %q", b, "456789")
	}
	if err := copyRange(s, 4, d, 10); err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("copying 10 bytes from offset 4 of a 10-byte file: %v, want an error saying it ends short", err)
	}
}
