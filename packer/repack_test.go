package packer

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// distroImage writes an initrd laid out as distributions ship them, with
// GNU cpio (testdata/distro-initrd.sh): an uncompressed early archive
// holding the AMD microcode, then the main archive piped through compress
// (nil: uncompressed). The main archive runs /scripts/hello from /init and
// has a hard-link pair, a device node and files to edit.
func distroImage(t *testing.T, compress []string) string {
	t.Helper()
	requireTool(t, "cpio", "cpio")
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox not found: install the Debian package busybox-static")
	}
	dir := t.TempDir()
	_, here, _, _ := runtime.Caller(0)
	cmd := exec.Command(filepath.Join(filepath.Dir(here), "..", "testdata", "distro-initrd.sh"), busybox)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making the image: %v\n%s", err, out)
	}
	early, err := os.ReadFile(filepath.Join(dir, "early.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(dir, "main.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	if compress != nil {
		requireTool(t, compress[0], compress[0])
		main = run(t, main, compress...)
	}
	return writeArtifact(t, "initrd.img", append(early, main...))
}

// imageTools are the main archives' compressions, with none.
func imageTools() []struct {
	name     string
	compress []string
	dc       []string
} {
	out := []struct {
		name     string
		compress []string
		dc       []string
	}{{None, nil, nil}}
	for _, tool := range standardTools {
		out = append(out, struct {
			name     string
			compress []string
			dc       []string
		}{tool.name, tool.compress, tool.dc})
	}
	return out
}

func repackT(t *testing.T, a *Artifact, v *overlay.View, compression string) []byte {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "new.img")
	if _, err := Repack(context.Background(), a, v, dst, compression); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Re-packing an artifact without edits gives the artifact, byte for byte,
// whatever its compression.
func TestRepackWithoutEditsIsTheArtifact(t *testing.T) {
	for _, tool := range imageTools() {
		t.Run(tool.name, func(t *testing.T) {
			p := distroImage(t, tool.compress)
			a := openArtifactT(t, p, "")
			got := repackT(t, a, viewOf(t, a), "")
			if want, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Errorf("re-pack without edits: %d bytes, differs from the artifact's %d", len(got), len(want))
			}
		})
	}
}

// edited is the artifact with an edits layer over it: a script changed,
// a file deleted, one chmodded, a file added in a new folder.
func edited(t *testing.T, a *Artifact) *overlay.View {
	return viewOf(t, a, &overlay.Static{LayerName: "edits", List: []overlay.Entry{
		{Path: "/scripts/hello", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes("#!/bin/sh\necho repack-marker\n")},
		{Path: "/etc/gone", Type: overlay.Whiteout},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o600, Content: overlay.Bytes("motd\n")},
		{Path: "/new", Type: overlay.Dir, Perm: 0o755},
		{Path: "/new/file", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("added\n")},
	}})
}

// A re-pack with edits copies the early archive byte for byte, keeps the
// main archive's compression, keeps every untouched record as GNU cpio
// lists it, gives the view the edits make, and is reproducible.
func TestRepackKeepsWhatNoEditTouches(t *testing.T) {
	for _, tool := range imageTools() {
		switch tool.name {
		case Bzip2, Lzma, Lzo:
			continue // written again in another compression: TestRepackNeedsAWritableCompression
		}
		t.Run(tool.name, func(t *testing.T) {
			p := distroImage(t, tool.compress)
			a := openArtifactT(t, p, "")
			v := edited(t, a)
			got := repackT(t, a, v, "")
			if again := repackT(t, a, v, ""); !bytes.Equal(got, again) {
				t.Errorf("two re-packs of the same edits differ")
			}
			orig, _ := os.ReadFile(p)
			newPath := writeArtifact(t, "new.img", got)
			before, after := segmentsT(t, p), segmentsT(t, newPath)
			if len(after) != 2 || after[0] != before[0] || after[1].Compression != before[1].Compression || after[1].Offset != before[1].Offset {
				t.Fatalf("segments %+v, want the early one as it was and then %s at %d: %+v", after, before[1].Compression, before[1].Offset, before)
			}
			if !bytes.Equal(got[:before[0].CompressedBytes], orig[:before[0].CompressedBytes]) {
				t.Errorf("the early archive is not copied byte for byte")
			}
			was := cpioListing(t, orig[before[1].Offset:], tool.dc)
			now := cpioListing(t, got[after[1].Offset:], tool.dc)
			for _, l := range was {
				edited := strings.HasSuffix(l, " scripts/hello") || strings.HasSuffix(l, " etc/gone") || strings.HasSuffix(l, " etc/motd")
				if !edited && !contains(now, l) {
					t.Errorf("GNU cpio lists %q in the artifact but not in the re-pack:\n%s", l, strings.Join(now, "\n"))
				}
			}
			nv := viewOf(t, openArtifactT(t, newPath, ""))
			if d, err := overlay.Diff(v, nv); err != nil || len(d) > 0 {
				t.Errorf("the re-pack's view differs from the edited view: %v %+v", err, d)
			}
			if n, ok := nv.Get("/etc/a"); !ok || n.UID != 1000 || n.GID != 100 || n.LinkID == "" {
				t.Errorf("/etc/a lost its owner or its hard link: %+v", n)
			}
		})
	}
}

// The kernel unpacks each re-packed compression into the edited view.
func TestKernelBootsARepack(t *testing.T) {
	kernel, _ := bootInputs(t)
	for _, tool := range imageTools() {
		switch tool.name {
		case Bzip2, Lzma, Lzo:
			continue
		}
		t.Run(tool.name, func(t *testing.T) {
			p := distroImage(t, tool.compress)
			a := openArtifactT(t, p, "")
			out := bootQEMU(t, kernel, writeArtifact(t, "new.img", repackT(t, a, edited(t, a), "")))
			for _, want := range []string{"repack-marker", "gone: ls: /etc/gone: No such file or directory", "motd: 600", "new: added"} {
				if !strings.Contains(out, want) {
					t.Errorf("console lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// A changed segment in a compression fledge cannot write is refused,
// naming --compression, and written in the one that option names.
func TestRepackNeedsAWritableCompression(t *testing.T) {
	p := distroImage(t, []string{"bzip2", "-c"})
	a := openArtifactT(t, p, "")
	_, err := Repack(context.Background(), a, edited(t, a), filepath.Join(t.TempDir(), "x"), "")
	if err == nil || !strings.Contains(err.Error(), "is bzip2, which fledge reads but cannot write") || !strings.Contains(err.Error(), "--compression") {
		t.Fatalf("re-pack of a changed bzip2 segment: %v; want it refused, naming --compression", err)
	}
	segs := segmentsT(t, writeArtifact(t, "new.img", repackT(t, a, edited(t, a), Zstd)))
	if segs[0].Compression != None || segs[1].Compression != Zstd {
		t.Errorf("re-pack with zstd: segments %+v, want none then zstd", segs)
	}
}

func segmentsT(t *testing.T, p string) []Segment {
	t.Helper()
	segs, err := Segments(p)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// cpioListing is GNU cpio's `-tv` of the data, decompressed with dc.
func cpioListing(t *testing.T, data []byte, dc []string) []string {
	t.Helper()
	if dc != nil {
		data = run(t, data, dc...)
	}
	return strings.Split(strings.TrimSpace(string(run(t, data, "cpio", "-tv", "--quiet"))), "\n")
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}
