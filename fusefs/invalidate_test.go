package fusefs

import (
	"slices"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// changedPaths reports what a new view adds, removes or shows differently,
// once per path, and nothing for entries that are only rebuilt.
func TestChangedPaths(t *testing.T) {
	file := func(p string, size int64) overlay.Entry {
		return overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o644, Size: size, Content: overlay.Bytes(make([]byte, size))}
	}
	dir := func(p string) overlay.Entry { return overlay.Entry{Path: p, Type: overlay.Dir, Perm: 0o755} }
	link := func(p, to string) overlay.Entry {
		return overlay.Entry{Path: p, Type: overlay.Symlink, Perm: 0o777, Linkname: to}
	}
	view := func(es ...overlay.Entry) *overlay.View {
		v, err := (&overlay.Stack{Layers: []overlay.Layer{&overlay.Static{LayerName: "l", List: es}}}).View()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := view(dir("/a"), file("/a/x", 1), file("/a/y", 1), file("/a/same", 3),
		dir("/b"), file("/b/z", 1), link("/c", "a"), dir("/keep"), file("/keep/k", 1), file("/m", 1))
	chmod := file("/m", 1)
	chmod.Perm = 0o600
	after := view(dir("/a"), file("/a/x", 2), file("/a/w", 1), file("/a/same", 3),
		file("/b", 1), link("/c", "b"), dir("/d"), dir("/d/e"), dir("/keep"), file("/keep/k", 1), chmod)

	var got []string
	changedPaths(before, after, func(p string) { got = append(got, p) })
	want := []string{"/a/w", "/a/x", "/a/y", "/b", "/c", "/d", "/m"}
	if !slices.Equal(got, want) {
		t.Errorf("changed %q, want %q", got, want)
	}
	got = nil
	changedPaths(before, view(dir("/a"), file("/a/x", 1), file("/a/y", 1), file("/a/same", 3),
		dir("/b"), file("/b/z", 1), link("/c", "a"), dir("/keep"), file("/keep/k", 1), file("/m", 1)), func(p string) { got = append(got, p) })
	if len(got) != 0 {
		t.Errorf("a rebuilt, equal view reports %q", got)
	}
	// A delta is compared at its own paths only: a folder's tree, or one
	// entry's attributes.
	got = nil
	report := func(p string) { got = append(got, p) }
	changedBelow(before, after, "/a", report)
	changedBelow(before, after, "/d", report)
	changedBelow(before, after, "/nowhere", report)
	changedAttrs(before, after, "/m", report)
	changedAttrs(before, after, "/keep", report)
	if want := []string{"/a/w", "/a/x", "/a/y", "/d", "/m"}; !slices.Equal(got, want) {
		t.Errorf("changed below /a, /d, /nowhere and at /m, /keep: %q, want %q", got, want)
	}
}
