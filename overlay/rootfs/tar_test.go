package rootfs

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

var when = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

type tarFile struct {
	hdr  tar.Header
	data string
}

func writeTar(t testing.TB, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		h.Size = int64(len(f.data))
		if h.ModTime.IsZero() {
			h.ModTime = when
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openTarBytes(t *testing.T, b []byte) ([]overlay.Entry, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := OpenTar(p)
	if err != nil {
		return nil, err
	}
	if l.Name() != LayerName {
		t.Fatalf("layer name %q, want %q", l.Name(), LayerName)
	}
	return l.Entries()
}

func read(t *testing.T, e overlay.Entry) string {
	t.Helper()
	r, err := e.Content.Open()
	if err != nil {
		t.Fatalf("%s: open: %v", e.Path, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: read: %v", e.Path, err)
	}
	return string(b)
}

func TestOpenTarKeepsMetadata(t *testing.T) {
	big := strings.Repeat("0123456789", 1000)
	b := writeTar(t, []tarFile{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0, Gid: 0}, data: "setuid"},
		{hdr: tar.Header{Name: "bin/big", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1234, Gid: 5678}, data: big},
		{hdr: tar.Header{Name: "bin/big2", Typeflag: tar.TypeLink, Linkname: "bin/big", Mode: 0o644, Uid: 1234, Gid: 5678}},
		{hdr: tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}},
		{hdr: tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660, Gid: 6}},
		{hdr: tar.Header{Name: "dev/tty", Typeflag: tar.TypeChar, Devmajor: 5, Devminor: 0, Mode: 0o666}},
		{hdr: tar.Header{Name: "run/", Typeflag: tar.TypeDir, Mode: 0o1777}},
		{hdr: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}},
	})
	ents, err := openTarBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]overlay.Entry{}
	for _, e := range ents {
		if e.Layer != LayerName {
			t.Errorf("%s: layer %q", e.Path, e.Layer)
		}
		if !e.MTime.Equal(when) {
			t.Errorf("%s: mtime %v, want %v", e.Path, e.MTime, when)
		}
		got[e.Path] = e
	}
	if len(got) != 11 {
		t.Fatalf("got %d entries, want 11: %v", len(got), ents)
	}
	if e := got["/"]; e.Type != overlay.Dir {
		t.Errorf("root: %+v", e)
	}
	if e := got["/bin/su"]; e.Perm != 0o755|fs.ModeSetuid || read(t, e) != "setuid" {
		t.Errorf("/bin/su: perm %v content %q", e.Perm, read(t, e))
	}
	big1, big2 := got["/bin/big"], got["/bin/big2"]
	if big1.UID != 1234 || big1.GID != 5678 || read(t, big1) != big {
		t.Errorf("/bin/big: owner %d:%d or content wrong", big1.UID, big1.GID)
	}
	if big1.LinkID == "" || big1.LinkID != big2.LinkID || big2.Type != overlay.Regular || big2.Size != int64(len(big)) || read(t, big2) != big {
		t.Errorf("hard link: %q/%q type %v size %d", big1.LinkID, big2.LinkID, big2.Type, big2.Size)
	}
	if e := got["/bin/sh"]; e.Type != overlay.Symlink || e.Linkname != "busybox" {
		t.Errorf("/bin/sh: %+v", e)
	}
	if e := got["/dev/sda"]; e.Type != overlay.BlockDev || e.Major != 8 || e.Minor != 0 || e.GID != 6 || e.Perm != 0o660 {
		t.Errorf("/dev/sda: %+v", e)
	}
	if e := got["/dev/tty"]; e.Type != overlay.CharDev || e.Major != 5 {
		t.Errorf("/dev/tty: %+v", e)
	}
	if e := got["/run"]; e.Perm != 0o777|fs.ModeSticky {
		t.Errorf("/run perm %v", e.Perm)
	}
	if e := got["/run/fifo"]; e.Type != overlay.FIFO {
		t.Errorf("/run/fifo: %+v", e)
	}
}

func TestOpenTarRejectsHostileEntries(t *testing.T) {
	cases := []struct {
		name  string
		files []tarFile
		want  string
	}{
		{"dotdot", []tarFile{{hdr: tar.Header{Name: "a/../../etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, data: "x"}}, `".."`},
		{"absolute", []tarFile{{hdr: tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, data: "x"}}, "absolute"},
		{"link outside", []tarFile{{hdr: tar.Header{Name: "a", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}}}, `".."`},
		{"link missing", []tarFile{{hdr: tar.Header{Name: "a", Typeflag: tar.TypeLink, Linkname: "b"}}}, "not an earlier entry"},
		{"link to dir", []tarFile{
			{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "a", Typeflag: tar.TypeLink, Linkname: "d"}},
		}, "expected a regular file"},
		{"duplicate", []tarFile{
			{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, data: "1"},
			{hdr: tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644}, data: "2"},
		}, "appears twice"},
		{"root file", []tarFile{{hdr: tar.Header{Name: ".", Typeflag: tar.TypeReg, Mode: 0o644}, data: "x"}}, "root must be a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openTarBytes(t, writeTar(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// A tar header cannot carry a NUL inside a name (ustar names end at the
// first NUL), so the name check is exercised directly.
func TestTarPathRejectsNUL(t *testing.T) {
	if _, err := tarPath("bin/a\x00b"); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("error %v, want one mentioning NUL", err)
	}
}

func TestOpenTarRejectsTruncatedArchive(t *testing.T) {
	b := writeTar(t, []tarFile{{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, data: strings.Repeat("x", 2000)}})
	if _, err := openTarBytes(t, b[:1000]); err == nil {
		t.Fatal("a truncated tar was accepted")
	}
}

// FuzzReadTar feeds arbitrary bytes to the tar indexer: it must never panic,
// and whatever it accepts must be clean absolute paths whose contents lie
// inside the archive.
func FuzzReadTar(f *testing.F) {
	f.Add(writeTar(f, []tarFile{
		{hdr: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "bin/a", Typeflag: tar.TypeReg, Mode: 0o4755}, data: "hello"},
		{hdr: tar.Header{Name: "bin/b", Typeflag: tar.TypeLink, Linkname: "bin/a"}},
		{hdr: tar.Header{Name: "bin/c", Typeflag: tar.TypeSymlink, Linkname: "/x/../y"}},
	}))
	f.Add(writeTar(f, []tarFile{{hdr: tar.Header{Name: "../a", Typeflag: tar.TypeReg}, data: "x"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := readTar(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		for _, e := range ents {
			clean, err := overlay.CleanPath(e.Path)
			if err != nil || clean != e.Path {
				t.Fatalf("accepted path %q (clean %q, %v)", e.Path, clean, err)
			}
			if s, ok := e.Content.(overlay.Section); ok && (s.Off < 0 || s.N < 0 || s.Off+s.N > int64(len(b))) {
				t.Fatalf("%s: section %d+%d outside a %d-byte archive", e.Path, s.Off, s.N, len(b))
			}
		}
	})
}

func TestOpenTarTwiceReusesTheOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, writeTar(t, []tarFile{{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, data: "x"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := OpenTar(p)
	if err != nil {
		t.Fatal(err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for range 10 {
		l, err := OpenTar(p)
		if err != nil {
			t.Fatal(err)
		}
		if l != first {
			t.Fatal("a second OpenTar of the same file made a new layer")
		}
	}
	if after := fds(); after != before {
		t.Errorf("open files went from %d to %d", before, after)
	}
}

// OpenTar remembers a layer by its file's device and inode, which is only
// sound while the file stays open: a closed file's inode can be given to
// the next tar written, which would then be served the old layer. A tar
// with no file data has no section holding the file, so it tests that the
// layer itself keeps it open, even after the garbage collector has run.
func TestOpenTarKeepsTheFileOpenForItsInode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dirs.tar")
	if err := os.WriteFile(p, writeTar(t, []tarFile{{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}}}), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTar(p); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	open := false
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); target == p {
			open = true
		}
	}
	if !open {
		t.Errorf("%s was closed while its layer is still remembered by inode", p)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "files.tar")
	if err := os.WriteFile(q, writeTar(t, []tarFile{{hdr: tar.Header{Name: "other", Typeflag: tar.TypeReg, Mode: 0o644}, data: "x"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := OpenTar(q)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := l.Entries()
	if len(ents) != 1 || ents[0].Path != "/other" {
		t.Errorf("OpenTar(%s) gave %v, want /other", q, ents)
	}
}
