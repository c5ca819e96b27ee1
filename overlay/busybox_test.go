package overlay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const debianBusyBox = "/usr/bin/busybox"

// realBusyBox opens Debian's static BusyBox, the reference binary the
// tests read applet tables from.
func realBusyBox(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(debianBusyBox)
	if err != nil {
		t.Fatalf("%v: install the Debian package busybox-static", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// busyboxSays runs the trusted Debian binary: the tests' oracle for what
// Applets must find without running the binary under test.
func busyboxSays(t *testing.T, arg string) []string {
	t.Helper()
	out, err := exec.Command(debianBusyBox, arg).Output()
	if err != nil {
		t.Fatalf("busybox %s: %v", arg, err)
	}
	return strings.Fields(string(out))
}

func TestAppletsFromRealBusyBox(t *testing.T) {
	f := realBusyBox(t)
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	got := Applets(f, fi.Size())
	want := busyboxSays(t, "--list")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Applets found %d names, busybox --list says %d\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
}

// TestBusyBoxLayerMatchesInstaller checks every link against where
// BusyBox's own installer puts it, and that it resolves to the binary.
func TestBusyBoxLayerMatchesInstaller(t *testing.T) {
	f := realBusyBox(t)
	fi, _ := f.Stat()
	l := BusyBox(HostFile(debianBusyBox), "file://"+debianBusyBox, Applets(f, fi.Size()))
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		if e.Type == Symlink {
			got[e.Path] = true
		}
	}
	want := map[string]bool{}
	for _, p := range busyboxSays(t, "--list-full") {
		if p != "bin/busybox" && p != "linuxrc" {
			want["/"+p] = true
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("links differ from busybox --list-full:\nonly ours   %q\nonly theirs %q", missing(want, got), missing(got, want))
	}
	v, err := (&Stack{Layers: []Layer{Skeleton(), l}}).View()
	if err != nil {
		t.Fatal(err)
	}
	for p := range got {
		n, ok := v.Resolve(p)
		if !ok || n.Path != "/bin/busybox" || n.Layer != "busybox" {
			t.Errorf("%s does not resolve to /bin/busybox in the view", p)
		}
	}
}

func missing(have, of map[string]bool) []string {
	var out []string
	for k := range of {
		if !have[k] {
			out = append(out, k)
		}
	}
	return out
}

func TestBusyBoxLayerEntries(t *testing.T) {
	bin := Bytes("busybox binary")
	l := BusyBox(bin, "https://example.com/busybox", []string{"sh", "env", "init", "chroot", "mount", "sh", "busybox", "linuxrc", "["})
	if l.Name() != "busybox" {
		t.Errorf("layer name %q", l.Name())
	}
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		path string
		typ  Type
		perm os.FileMode
		link string
	}
	var got []row
	for _, e := range ents {
		got = append(got, row{e.Path, e.Type, e.Perm, e.Linkname})
		if e.Source != "https://example.com/busybox" || e.Layer != "busybox" {
			t.Errorf("%s: provenance %q %q", e.Path, e.Layer, e.Source)
		}
	}
	want := []row{
		{"/bin/busybox", Regular, 0o755, ""},
		{"/bin/sh", Symlink, 0o777, "busybox"},
		{"/usr/bin/env", Symlink, 0o777, "../../bin/busybox"},
		{"/sbin/init", Symlink, 0o777, "../bin/busybox"},
		{"/usr/sbin/chroot", Symlink, 0o777, "../../bin/busybox"},
		{"/bin/mount", Symlink, 0o777, "busybox"},
		{"/usr/bin/[", Symlink, 0o777, "../../bin/busybox"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\ngot  %v\nwant %v", got, want)
	}
	if ents[0].Size != int64(len(bin)) || ents[0].Content == nil {
		t.Errorf("/bin/busybox: size %d, content %v", ents[0].Size, ents[0].Content)
	}
}

func TestBusyBoxLayerErrors(t *testing.T) {
	cases := []struct {
		name    string
		bin     Content
		applets []string
		want    string
	}{
		{"climbing applet", Bytes("x"), []string{"sh", "../etc/passwd"}, `busybox applet "../etc/passwd": expected a short name`},
		{"dot applet", Bytes("x"), []string{".."}, `busybox applet ".."`},
		{"slash applet", Bytes("x"), []string{"a/b"}, `busybox applet "a/b"`},
		{"missing binary", HostFile("/nonexistent/busybox"), []string{"sh"}, "busybox binary src: open /nonexistent/busybox: no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BusyBox(tc.bin, "src", tc.applets).Entries()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestBusyBoxLinksRun materialises the layer on the host and runs applets
// through their links, proving the relative targets are the ones BusyBox
// dispatches on (argv[0]).
func TestBusyBoxLinksRun(t *testing.T) {
	root := t.TempDir()
	ents, err := BusyBox(HostFile(debianBusyBox), "", []string{"sh", "basename", "sysctl"}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(root, e.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if e.Type == Symlink {
			err = os.Symlink(e.Linkname, p)
		} else {
			err = copyContent(e.Content, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ argv []string }{
		{[]string{"bin/sh", "-c", "echo ok"}},
		{[]string{"usr/bin/basename", "/x/ok"}},
	} {
		out, err := exec.Command(filepath.Join(root, tc.argv[0]), tc.argv[1:]...).CombinedOutput()
		if err != nil || string(out) != "ok\n" {
			t.Errorf("%v: %q, %v", tc.argv, out, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "sbin/sysctl")); err != nil {
		t.Errorf("sbin/sysctl: %v", err)
	}
}

func copyContent(c Content, dst string) error {
	r, err := c.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, r.Size())
	if _, err := r.ReadAt(buf, 0); err != nil {
		return err
	}
	return os.WriteFile(dst, buf, 0o755)
}

func TestAppletsFallback(t *testing.T) {
	table := "[\x00[[\x00ash\x00sh\x00\x00"
	pad := func(n int) string { return strings.Repeat("\x7fELF junk ", n/10+1)[:n] }
	valid := []string{"[", "[[", "ash", "sh"}
	cases := []struct {
		name string
		data string
		want []string
	}{
		{"table at start", table + "rest", valid},
		{"table at end of file", pad(100) + table, valid},
		{"table across a scan chunk boundary", pad(scanChunk-3) + table + pad(50), valid},
		{"table in the second chunk", pad(scanChunk+70) + table, valid},
		{"bogus marker before the table", "[\x00[[\x00Bad Name\x00\x00" + table, valid},
		{"unsorted", "[\x00[[\x00sh\x00ash\x00\x00", nil},
		{"name that climbs", "[\x00[[\x00ash\x00../x\x00\x00", nil},
		{"dot name", "[\x00[[\x00.\x00sh\x00\x00", nil},
		{"too few names", "[\x00[[\x00\x00", nil},
		{"unterminated", "[\x00[[\x00ash\x00sh", nil},
		{"no table", pad(5000), nil},
		{"empty file", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = fallbackApplets
			}
			r := strings.NewReader(tc.data)
			if got := Applets(r, r.Size()); !reflect.DeepEqual(got, want) {
				t.Errorf("got %q\nwant %q", got, want)
			}
		})
	}
}

func TestAppletsOfNonBusyBoxBinary(t *testing.T) {
	// Not the test binary: it holds this file's fixture tables.
	const other = "/usr/bin/cpio"
	data, err := os.ReadFile(other)
	if err != nil {
		t.Fatalf("%v: install the Debian package cpio", err)
	}
	got := Applets(bytes.NewReader(data), int64(len(data)))
	if !reflect.DeepEqual(got, fallbackApplets) {
		t.Errorf("%s gave %q, want the fallback list", other, got)
	}
	got[0] = "changed"
	if fallbackApplets[0] != "[" {
		t.Errorf("the caller could modify the fallback list")
	}
	for _, name := range fallbackApplets {
		if !validApplet(name) {
			t.Errorf("fallback applet %q is not a valid name", name)
		}
	}
}

func TestAppletsReadError(t *testing.T) {
	if got := Applets(failingReader{}, 1<<20); !reflect.DeepEqual(got, fallbackApplets) {
		t.Errorf("unreadable binary gave %q", got)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }
