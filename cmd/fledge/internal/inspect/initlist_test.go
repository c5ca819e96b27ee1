package inspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/packer"
)

// roundTripImage has one of everything gen_init_cpio can express.
func roundTripImage(t *testing.T) *overlay.View {
	shared := overlay.Bytes("one inode, two names\n")
	return view(t, layer("rootfs",
		hostFile(t, "/bin/busybox", 0o755, staticBusybox(t)),
		link("/bin/sh", "busybox"),
		file("/init", 0o755, "#!/bin/sh\nexec /bin/sh\n"),
		overlay.Entry{Path: "/usr/bin/a", Type: overlay.Regular, Perm: 0o755, Size: int64(len(shared)), Content: shared, LinkID: "g"},
		overlay.Entry{Path: "/usr/sbin/b", Type: overlay.Regular, Perm: 0o755, Size: int64(len(shared)), Content: shared, LinkID: "g"},
		overlay.Entry{Path: "/usr/bin/su", Type: overlay.Regular, Perm: permOf(0o4755), UID: 0, GID: 50, Size: 2, Content: overlay.Bytes("su")},
		overlay.Entry{Path: "/home/me", Type: overlay.Dir, Perm: 0o700, UID: 1000, GID: 1000},
		overlay.Entry{Path: "/dev/sda", Type: overlay.BlockDev, Perm: 0o660, GID: 6, Major: 8},
		overlay.Entry{Path: "/run/fifo", Type: overlay.FIFO, Perm: 0o620},
		overlay.Entry{Path: "/run/sock", Type: overlay.Socket, Perm: 0o777},
		file("/empty", 0o600, ""),
	))
}

func packTo(t *testing.T, v *overlay.View, dst string) *overlay.View {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := packer.Write(context.Background(), v, f, packer.Options{Compression: "gzip"}); err != nil {
		t.Fatalf("pack: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := packer.OpenArtifact(dst, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	back, err := (&overlay.Stack{Layers: []overlay.Layer{a}}).View()
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// fingerprint is what must survive the round trip, one line per entry;
// hard links are recorded as the group's first path.
func fingerprint(t *testing.T, v *overlay.View) []string {
	t.Helper()
	var out []string
	first := map[string]string{}
	err := v.Walk(func(n *overlay.Node) error {
		line := fmt.Sprintf("%s %s %s %d:%d %s %d,%d", n.Path, n.Type, ModeString(&n.Entry), n.UID, n.GID, n.Linkname, n.Major, n.Minor)
		if n.Type == overlay.Regular {
			r, err := n.Content.Open()
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, r)
			r.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", h.Sum(nil))
			if n.LinkID != "" {
				if _, ok := first[n.LinkID]; !ok {
					first[n.LinkID] = n.Path
				}
				line += " link-of " + first[n.LinkID]
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitListRoundTrip(t *testing.T) {
	dir := t.TempDir()
	art := packTo(t, roundTripImage(t), filepath.Join(dir, "a.cpio.gz"))
	var list bytes.Buffer
	x := Extractor{Dir: filepath.Join(dir, "blobs")}
	if err := WriteInitList(&list, art, "/", x.Locate); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"dir . 0755 0 0\n",
		"nod /dev/console 0600 0 0 c 5 1\n",
		"nod /dev/sda 0660 0 6 b 8 0\n",
		"slink /bin/sh busybox 0777 0 0\n",
		"pipe /run/fifo 0620 0 0\n",
		"sock /run/sock 0777 0 0\n",
		"dir /home/me 0700 1000 1000\n",
		" 4755 0 50\n",
		" 0755 0 0 /usr/sbin/b\n",
	} {
		if !strings.Contains(list.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, list.String())
		}
	}
	ents, err := ParseInitList(bytes.NewReader(list.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := (&overlay.Stack{Layers: []overlay.Layer{&overlay.Static{LayerName: "list", List: ents}}}).View()
	if err != nil {
		t.Fatal(err)
	}
	back := packTo(t, rebuilt, filepath.Join(dir, "b.cpio.gz"))
	want, got := fingerprint(t, art), fingerprint(t, back)
	if !slices.Equal(want, got) {
		t.Fatalf("round trip changed the entries\nwant %q\ngot  %q", want, got)
	}
	checkWithGNUCpio(t, filepath.Join(dir, "b.cpio.gz"), back)
}

// checkWithGNUCpio lists the rebuilt archive with GNU cpio, an independent
// reader, and compares the names with the view.
func checkWithGNUCpio(t *testing.T, archive string, v *overlay.View) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `gzip -dc "$1" | cpio -it --quiet`, "sh", archive)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gzip -dc | cpio -it: %v\n%s(install the Debian packages gzip and cpio)", err, out)
	}
	names := strings.Fields(string(out))
	var paths []string
	v.Walk(func(n *overlay.Node) error {
		paths = append(paths, strings.TrimPrefix(n.Path, "/"))
		return nil
	})
	paths[0] = "."
	sort.Strings(names)
	sort.Strings(paths)
	if !slices.Equal(names, paths) {
		t.Fatalf("GNU cpio lists %q\nthe view has %q", names, paths)
	}
}

func TestInitListRefusesWhatItCannotExpress(t *testing.T) {
	v := view(t, layer("rootfs", file("/etc/with space", 0o644, "x")))
	err := WriteInitList(io.Discard, v, "/etc", HostLocation)
	if err == nil || !strings.Contains(err.Error(), "white space") {
		t.Fatalf("want a white-space error, got %v", err)
	}
	v = view(t, layer("init", file("/init", 0o755, "x")))
	err = WriteInitList(io.Discard, v, "/init", HostLocation)
	if err == nil || !strings.Contains(err.Error(), "--extract-to") {
		t.Fatalf("want an error naming --extract-to, got %v", err)
	}
}

func TestParseInitListErrors(t *testing.T) {
	cases := map[string]string{
		"frob /x 0755 0 0\n":                 "unknown type",
		"dir /x 0755 0\n":                    "takes 4 fields",
		"dir /x 0999 0 0\n":                  "octal",
		"dir /../x 0755 0 0\n":               "..",
		"nod /dev/x 0600 0 0 q 1 1\n":        "device type",
		"file /x /does/not/exist 0644 0 0\n": "location",
	}
	for in, want := range cases {
		_, err := ParseInitList(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseInitList(%q) error = %v, want one naming line 1 and %q", in, err, want)
		}
	}
}
