package ldso

import (
	"debug/elf"
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

// TestViewReadsTheLayersAboveOnce: building a view whose stack holds the
// libraries layer reads each layer above it once, not once for the
// libraries and again for the view (a mapped tree walked twice costs two
// stats per file), and the view still has the libraries the programs need.
func TestViewReadsTheLayersAboveOnce(t *testing.T) {
	host := newSysroot(t)
	host.loader()
	host.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
	app := newSysroot(t)
	app.src = host.src
	app.prog("/app", interp, []string{"liba.so.1"})
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
