package ldso

import (
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// libraryEntries returns the libraries layer's entries as "path -> target"
// or "path <- host file", with the programs that needed them.
func libraryEntries(t *testing.T, l overlay.Layer) []string {
	t.Helper()
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		s := e.Path + " <- " + e.Source
		if e.Type == overlay.Symlink {
			s = e.Path + " -> " + e.Linkname
		}
		out = append(out, s+" for "+strings.Join(e.NeededBy, ","))
	}
	return out
}

func TestLibrariesLayer(t *testing.T) {
	host := newSysroot(t)
	host.loader()
	host.lib("/usr/lib/x86_64-linux-gnu/liba.so.1.0", "liba.so.1", nil)
	host.link("/usr/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1.0")
	host.lib("/usr/lib/libimg.so.1", "libimg.so.1", nil)
	host.lib("/opt/conf/libconf.so.1", "libconf.so.1", nil)
	host.lib("/usr/lib/libnew.so.1", "libnew.so.1", nil)
	host.file("/etc/ld.so.conf", "/opt/conf\n")

	app := newSysroot(t)
	app.src = host.src
	app.prog("/app", interp, []string{"liba.so.1", "libimg.so.1", "libconf.so.1"})
	img, err := os.ReadFile(filepath.Join(host.root, "usr/lib/libimg.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	below := []overlay.Layer{overlay.Skeleton(), &overlay.Static{LayerName: "rootfs", List: []overlay.Entry{
		{Path: "/usr/lib/libimg.so.1", Type: overlay.Regular, Perm: 0o755, Size: int64(len(img)), Content: overlay.Bytes(img)},
	}}}
	above := []overlay.Layer{overlay.Mappings(app.root, []overlay.Mapping{{Host: filepath.Join(app.root, "app"), Guest: "/usr/bin/app"}})}
	l := Libraries(below, above, Host{Root: host.root})

	got := libraryEntries(t, l)
	hostLib := filepath.Join(host.root, "usr/lib/x86_64-linux-gnu")
	want := []string{
		"/lib/x86_64-linux-gnu/libconf.so.1 -> /opt/conf/libconf.so.1 for /usr/bin/app",
		interp + " <- " + filepath.Join(host.root, interp) + " for /usr/bin/app",
		"/opt/conf/libconf.so.1 <- " + filepath.Join(host.root, "opt/conf/libconf.so.1") + " for /usr/bin/app",
		"/usr/lib/x86_64-linux-gnu/liba.so.1 -> liba.so.1.0 for /usr/bin/app",
		"/usr/lib/x86_64-linux-gnu/liba.so.1.0 <- " + hostLib + "/liba.so.1.0 for /usr/bin/app",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("entries:\n%s\nwant (the rootfs's libimg not taken from the host):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, names := l.(overlay.Live).Watch(); !slices.Contains(names, hostLib+"/liba.so.1.0") {
		t.Errorf("the layer does not watch the host files it took: %v", names)
	}

	// The mapped program rebuilt against another library brings it.
	app.prog("/app", interp, []string{"libnew.so.1"})
	got = libraryEntries(t, l)
	if want := "/usr/lib/libnew.so.1 <- " + filepath.Join(host.root, "usr/lib/libnew.so.1") + " for /usr/bin/app"; !slices.Contains(got, want) || len(got) != 2 {
		t.Errorf("after the rebuild, entries:\n%s\nwant the interpreter and %s", strings.Join(got, "\n"), want)
	}

	// A library the host lacks fails with one line naming the program,
	// the library and where it was looked for.
	if err := os.Remove(filepath.Join(host.root, "usr/lib/libnew.so.1")); err != nil {
		t.Fatal(err)
	}
	_, err = l.Entries()
	if err == nil {
		t.Fatal("a library missing on the host did not fail the layer")
	}
	msg := err.Error()
	for _, part := range []string{"/usr/bin/app needs libnew.so.1", "/usr/lib/x86_64-linux-gnu, ", "host_libraries = false"} {
		if !strings.Contains(msg, part) || strings.Contains(msg, "\n") {
			t.Errorf("error %q: want one line containing %q", msg, part)
		}
	}
}

// A program of another architecture is never given the host's libraries:
// its own folders are searched, and the error says which architecture.
func TestLibrariesForeignProgram(t *testing.T) {
	host := newSysroot(t)
	host.lib("/lib/ld-linux-aarch64.so.1", "ld-linux-aarch64.so.1", nil)
	host.machine("/lib/ld-linux-aarch64.so.1", elf.EM_AARCH64)
	host.lib("/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1", nil)
	host.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
	app := newSysroot(t)
	app.src = host.src
	app.prog("/app", "/lib/ld-linux-aarch64.so.1", []string{"liba.so.1"})
	app.machine("/app", elf.EM_AARCH64)
	above := []overlay.Layer{overlay.Mappings(app.root, []overlay.Mapping{{Host: filepath.Join(app.root, "app"), Guest: "/usr/bin/app"}})}
	_, err := Libraries([]overlay.Layer{overlay.Skeleton()}, above, Host{Root: host.root}).Entries()
	if err == nil {
		t.Fatal("an AArch64 program got libraries from an x86-64 host")
	}
	for _, part := range []string{"/usr/bin/app needs liba.so.1 (EM_AARCH64/ELFCLASS64)", "/lib/aarch64-linux-gnu"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
}

// counted is a layer that counts how often it is read.
type counted struct {
	overlay.Layer
	reads int
}

func (c *counted) Entries() ([]overlay.Entry, error) {
	c.reads++
	return c.Layer.Entries()
}

// hostWithApp returns a host with the loader and liba.so.1 at lib, and a
// tree whose program /app needs that library.
func hostWithApp(t *testing.T, lib string) (host, app *sysroot) {
	t.Helper()
	host = newSysroot(t)
	host.loader()
	host.lib(lib, "liba.so.1", nil)
	app = newSysroot(t)
	app.src = host.src
	app.prog("/app", interp, []string{"liba.so.1"})
	return host, app
}

// TestViewReadsTheLayersAboveOnce: building a view whose stack holds the
// libraries layer reads each layer above it once, not once for the
// libraries and again for the view (a mapped tree walked twice costs two
// stats per file), and the view still has the libraries the programs need.
func TestViewReadsTheLayersAboveOnce(t *testing.T) {
	host, app := hostWithApp(t, "/usr/lib/liba.so.1")
	below := []overlay.Layer{overlay.Skeleton()}
	above := &counted{Layer: overlay.Mappings(app.root, []overlay.Mapping{{Host: filepath.Join(app.root, "app"), Guest: "/usr/bin/app"}})}
	st := overlay.Stack{Layers: append(below, Libraries(below, []overlay.Layer{above}, Host{Root: host.root}), above)}
	for i := 1; i <= 2; i++ {
		v, err := st.View()
		if err != nil {
			t.Fatal(err)
		}
		if above.reads != i {
			t.Fatalf("view %d: the layer above was read %d times in all, want %d", i, above.reads, i)
		}
		if n, ok := v.Get("/usr/lib/liba.so.1"); !ok || n.Layer != LayerName {
			t.Fatalf("view %d: /usr/lib/liba.so.1 is %+v, %v; want it from the libraries layer", i, n, ok)
		}
	}
}

// viewListing renders every node of the view of layers, what it shadows,
// and what was removed; the error instead when there is one.
func viewListing(layers ...overlay.Layer) string {
	v, err := (&overlay.Stack{Layers: layers}).View()
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	line := func(prefix string, e overlay.Entry) {
		st := e.HostStat
		e.HostStat = nil
		fmt.Fprintf(&b, "%s%+v", prefix, e)
		if st != nil {
			fmt.Fprintf(&b, " ino %d size %d mtime %v", st.Ino, st.Size, st.Mtim)
		}
		b.WriteByte('\n')
	}
	_ = v.Walk(func(n *overlay.Node) error {
		line("", n.Entry)
		for _, s := range n.Shadowed {
			line("  shadows ", s)
		}
		return nil
	})
	for _, p := range slices.Sorted(maps.Keys(v.Removed)) {
		line("removed ", v.Removed[p])
	}
	return b.String()
}

// TestLibrariesBeneathTheLayersAbove: a stack merges the layers around the
// libraries layer once and puts the libraries beneath the layers above;
// the view must be the one the libraries' entries give merged in their
// place, between the layers below and above: with a mapped tree that
// makes a library's folder a symlink, one that puts a folder where
// the interpreter goes, edits that delete a library, and, as a mount has
// it, edits the layer reads that the stack does not hold.
func TestLibrariesBeneathTheLayersAbove(t *testing.T) {
	host, app := hostWithApp(t, "/lib/liba.so.1")
	app.link("/root/lib", "usr/lib")
	app.file("/extra/x", "x")
	prog := overlay.Mapping{Host: filepath.Join(app.root, "app"), Guest: "/usr/bin/app"}
	cases := []struct {
		name     string
		mappings []overlay.Mapping
		edits    []overlay.Entry
		mounted  bool // the edits are above the libraries but not in the stack
		want     string
	}{
		{name: "the libraries go where the image has nothing", mappings: []overlay.Mapping{prog}, want: "/lib/liba.so.1 "},
		{name: "the library's folder a symlink above", mappings: []overlay.Mapping{prog, {Host: filepath.Join(app.root, "root"), Guest: "/"}}, want: "/usr/lib/liba.so.1 "},
		{name: "a folder above where the interpreter goes", mappings: []overlay.Mapping{prog, {Host: filepath.Join(app.root, "extra"), Guest: "/lib64/extra"}}},
		{name: "edits delete a library", mappings: []overlay.Mapping{prog}, edits: []overlay.Entry{{Path: "/lib/liba.so.1", Type: overlay.Whiteout}}},
		{name: "edits of a mount", mappings: []overlay.Mapping{prog}, edits: []overlay.Entry{{Path: "/lib/liba.so.1", Type: overlay.Regular, Perm: 0o644}}, mounted: true},
	}
	for _, c := range cases {
		below := []overlay.Layer{overlay.Skeleton()}
		mappings := overlay.Mappings(app.root, c.mappings)
		edits := &overlay.Static{LayerName: "edits", List: c.edits}
		l := Libraries(below, []overlay.Layer{mappings, edits}, Host{Root: host.root})
		top := []overlay.Layer{mappings, edits}
		if c.mounted {
			top = top[:1]
		}
		got := viewListing(append(slices.Clip(below), append([]overlay.Layer{l}, top...)...)...)
		ents, err := l.Entries()
		if err != nil {
			t.Fatal(err)
		}
		want := viewListing(append(slices.Clip(below), append([]overlay.Layer{&overlay.Static{LayerName: LayerName, List: ents}}, top...)...)...)
		if got != want {
			t.Errorf("%s: the view is\n%s\nwith the libraries merged in their place\n%s", c.name, got, want)
		}
		if c.want != "" && !strings.Contains(got, "{Path:"+c.want) {
			t.Errorf("%s: the view lacks %s:\n%s", c.name, c.want, got)
		}
	}
}
