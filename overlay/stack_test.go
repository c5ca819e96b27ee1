package overlay

import (
	"fmt"
	"io/fs"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func dir(p string) Entry { return Entry{Path: p, Type: Dir, Perm: 0o755} }
func file(p, data string) Entry {
	return Entry{Path: p, Type: Regular, Perm: 0o644, Content: Bytes(data), Size: int64(len(data))}
}
func link(p, target string) Entry {
	return Entry{Path: p, Type: Symlink, Perm: 0o777, Linkname: target}
}
func whiteout(p string) Entry              { return Entry{Path: p, Type: Whiteout} }
func layer(name string, es ...Entry) Layer { return &Static{LayerName: name, List: es} }

// listing renders a view as "path type layer" lines in walk order.
func listing(t *testing.T, v *View) string {
	t.Helper()
	var b strings.Builder
	err := v.Walk(func(n *Node) error {
		b.WriteString(n.Path + " " + n.Type.String() + " " + n.Layer)
		if n.Type == Symlink {
			b.WriteString(" -> " + n.Linkname)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestViewMerge(t *testing.T) {
	tests := []struct {
		name   string
		layers []Layer
		want   string
	}{
		{
			name:   "higher layer wins a path, directories merge",
			layers: []Layer{layer("a", dir("/etc"), file("/etc/x", "1"), file("/etc/y", "1")), layer("b", file("/etc/x", "2"))},
			want:   "/ dir skeleton\n/etc dir a\n/etc/x file b\n/etc/y file a\n",
		},
		{
			name:   "whiteout deletes a subtree",
			layers: []Layer{layer("a", dir("/opt"), file("/opt/f", "1"), file("/keep", "")), layer("edits", whiteout("/opt"))},
			want:   "/ dir skeleton\n/keep file a\n",
		},
		{
			name: "opaque directory hides lower children",
			layers: []Layer{layer("a", dir("/d"), file("/d/old", "")),
				layer("b", Entry{Path: "/d", Type: Dir, Perm: 0o700, Opaque: true}, file("/d/new", ""))},
			want: "/ dir skeleton\n/d dir b\n/d/new file b\n",
		},
		{
			name:   "implicit parents are created and do not replace a lower directory",
			layers: []Layer{layer("a", Entry{Path: "/usr", Type: Dir, Perm: 0o700, UID: 5}), layer("m", file("/usr/bin/app", ""))},
			want:   "/ dir skeleton\n/usr dir a\n/usr/bin dir m\n/usr/bin/app file m\n",
		},
		{
			name:   "a file replacing a directory drops its children",
			layers: []Layer{layer("a", dir("/x"), file("/x/y", "")), layer("b", file("/x", ""))},
			want:   "/ dir skeleton\n/x file b\n",
		},
		{
			name:   "symlinked parent is followed like the kernel does (merged /usr)",
			layers: []Layer{layer("rootfs", dir("/usr"), dir("/usr/bin"), link("/bin", "usr/bin")), layer("busybox", file("/bin/busybox", ""))},
			want:   "/ dir skeleton\n/bin symlink rootfs -> usr/bin\n/usr dir rootfs\n/usr/bin dir rootfs\n/usr/bin/busybox file busybox\n",
		},
		{
			name:   "absolute symlink targets stay inside the image",
			layers: []Layer{layer("rootfs", dir("/real"), link("/lnk", "/real")), layer("m", file("/lnk/f", ""))},
			want:   "/ dir skeleton\n/lnk symlink rootfs -> /real\n/real dir rootfs\n/real/f file m\n",
		},
		{
			name:   "dangling symlink parent is replaced by a directory",
			layers: []Layer{layer("rootfs", link("/lnk", "/nowhere")), layer("m", file("/lnk/f", ""))},
			want:   "/ dir skeleton\n/lnk dir m\n/lnk/f file m\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := (&Stack{Layers: tt.layers}).View()
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(t, v); got != tt.want {
				t.Errorf("view:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestViewShadowsAndRemoved(t *testing.T) {
	v, err := (&Stack{Layers: []Layer{
		layer("busybox", file("/bin/sh", "bb")),
		layer("mappings", file("/bin/sh", "mine")),
		layer("edits", whiteout("/bin/gone")),
		layer("edits2", file("/bin/gone", ""), whiteout("/bin/gone")),
	}}).View()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := v.Get("/bin/sh")
	if !ok || n.Layer != "mappings" || len(n.Shadowed) != 1 || n.Shadowed[0].Layer != "busybox" {
		t.Fatalf("/bin/sh = %+v, want mappings shadowing busybox", n)
	}
	if _, ok := v.Get("/bin/gone"); ok {
		t.Error("/bin/gone survived its whiteout")
	}
	if w, ok := v.Removed["/bin/gone"]; !ok || w.Layer != "edits2" {
		t.Errorf("Removed[/bin/gone] = %+v, want the edits2 whiteout", w)
	}
}

func TestViewSymlinkLoop(t *testing.T) {
	_, err := (&Stack{Layers: []Layer{layer("rootfs", link("/a", "b"), link("/b", "a")), layer("m", file("/a/f", ""))}}).View()
	if err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Fatalf("err = %v, want a symlink loop error", err)
	}
}

func TestViewRejectsHostileEntries(t *testing.T) {
	for _, p := range []string{"/../etc/passwd", "a/../../x", "/x\x00y", ""} {
		_, err := (&Stack{Layers: []Layer{layer("bad", file(p, ""))}}).View()
		if err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	_, err := (&Stack{Layers: []Layer{layer("bad", file("/", ""))}}).View()
	if err == nil || !strings.Contains(err.Error(), "root must be a directory") {
		t.Errorf("file at root: err = %v", err)
	}
}

func TestRootMetadataAndResolve(t *testing.T) {
	v, err := (&Stack{Layers: []Layer{
		Skeleton(),
		layer("r", Entry{Path: "/", Type: Dir, Perm: 0o700}, link("/sh", "/bin/busybox"), file("/bin/busybox", "x")),
	}}).View()
	if err != nil {
		t.Fatal(err)
	}
	if v.Root().Perm != 0o700 || v.Root().Layer != "r" {
		t.Errorf("root = %v from %s, want 0700 from r", v.Root().Perm, v.Root().Layer)
	}
	n, ok := v.Resolve("/sh")
	if !ok || n.Path != "/bin/busybox" {
		t.Errorf("Resolve(/sh) = %v, %v", n, ok)
	}
	tmp, _ := v.Get("/tmp")
	if tmp.Mode() != fs.ModeDir|fs.ModeSticky|0o777 || tmp.UnixMode() != 0o41777 {
		t.Errorf("/tmp mode = %v (%o)", tmp.Mode(), tmp.UnixMode())
	}
}

// fullListing renders a view with shadows, so tests compare everything
// a view says, not only what wins.
func fullListing(t *testing.T, v *View) string {
	t.Helper()
	var b strings.Builder
	v.Walk(func(n *Node) error {
		fmt.Fprintf(&b, "%s %s %s %o %s shadows:", n.Path, n.Type, n.Layer, n.UnixMode(), n.Linkname)
		for _, s := range n.Shadowed {
			b.WriteString(" " + s.Layer)
		}
		b.WriteByte('\n')
		return nil
	})
	for _, p := range slices.Sorted(maps.Keys(v.Removed)) {
		fmt.Fprintf(&b, "removed %s by %s\n", p, v.Removed[p].Layer)
	}
	return b.String()
}

// TestWithEqualsFullMerge splits one stack at every layer: merging the
// lower part, then putting the rest on top with With, must give what one
// merge of all layers gives, and must leave the lower view as it was.
func TestWithEqualsFullMerge(t *testing.T) {
	layers := []Layer{
		Skeleton(),
		layer("rootfs", dir("/usr"), dir("/usr/bin"), link("/bin2", "usr/bin"), file("/usr/bin/x", "x"),
			dir("/opt"), file("/opt/a", "a"), dir("/opt/sub"), file("/opt/sub/b", "b")),
		layer("busybox", file("/bin2/busybox", "bb"), link("/bin2/sh", "busybox")),
		layer("mappings", file("/usr/bin/x", "mine"), file("/deep/new/file", "n")),
		layer("edits", whiteout("/opt/sub"), Entry{Path: "/etc", Type: Dir, Perm: 0o700, Opaque: true},
			file("/etc/hosts", "h"), file("/usr/bin/y", "y"), Entry{Path: "/", Type: Dir, Perm: 0o750}),
		layer("edits2", whiteout("/usr/bin/busybox"), file("/opt/sub", "now a file"), dir("/deep/new/dir")),
	}
	full, err := (&Stack{Layers: layers}).View()
	if err != nil {
		t.Fatal(err)
	}
	want := fullListing(t, full)
	for k := 0; k <= len(layers); k++ {
		base, err := (&Stack{Layers: layers[:k]}).View()
		if err != nil {
			t.Fatal(err)
		}
		before := fullListing(t, base)
		got, err := base.With(layers[k:]...)
		if err != nil {
			t.Fatal(err)
		}
		if g := fullListing(t, got); g != want {
			t.Errorf("split at %d: With gives\n%s\nfull merge gives\n%s", k, g, want)
		}
		if after := fullListing(t, base); after != before {
			t.Errorf("split at %d: With changed its base view:\n%s\nwas\n%s", k, after, before)
		}
	}
}

// exactListing renders every field of every node of v, what it shadows
// and what was removed, to compare two views exactly.
func exactListing(v *View) string {
	var b strings.Builder
	v.Walk(func(n *Node) error {
		fmt.Fprintf(&b, "%+v\n", n.Entry)
		for _, s := range n.Shadowed {
			fmt.Fprintf(&b, "  shadows %+v\n", s)
		}
		return nil
	})
	for _, p := range slices.Sorted(maps.Keys(v.Removed)) {
		fmt.Fprintf(&b, "removed %s by %+v\n", p, v.Removed[p])
	}
	return b.String()
}

// randomEntries returns n entries at random paths over few names, sorted
// by path: folders (some opaque, some implicit), files, symlinks to
// folders, to files, to nothing and in loops, whiteouts, and paths that
// need cleaning or are refused.
func randomEntries(rng *rand.Rand, n int) []Entry {
	names := []string{"a", "ab", "-c", "lib"}
	targets := []string{"a", "b/c", "/lib", "..", "/", "x", "lib/../a", "a/b/c"}
	var ents []Entry
	for range n {
		var p string
		for range 1 + rng.Intn(4) {
			p += "/" + names[rng.Intn(len(names))]
		}
		switch rng.Intn(300) {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9:
			p += "/"
		case 10, 11, 12, 13, 14, 15, 16, 17, 18, 19:
			p = strings.Replace(p, "/", "//", 1)
		case 20, 21, 22, 23, 24, 25, 26, 27, 28, 29:
			p += "/."
		case 30:
			p = "/"
		case 31:
			p += "/.."
		}
		e := Entry{Path: p, Source: fmt.Sprint("s", len(ents))}
		switch rng.Intn(8) {
		case 0, 1:
			e.Type, e.Perm = Dir, 0o700
			e.Opaque = rng.Intn(6) == 0
			e.Implicit = !e.Opaque && rng.Intn(2) == 0
		case 2, 3:
			e.Type, e.Perm = Regular, 0o644
		case 4, 5:
			e.Type, e.Perm, e.Linkname = Symlink, 0o777, targets[rng.Intn(len(targets))]
		default:
			e.Type = Whiteout
		}
		ents = append(ents, e)
	}
	slices.SortStableFunc(ents, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return ents
}

// TestViewWalksFromTheLastFolder: a layer's entries are applied from the
// folder the previous entry went into where they can; the view must be
// what applying each entry on its own gives (as a layer of one entry of
// the same name), over random trees of folders, symlinks and whiteouts.
func TestViewWalksFromTheLastFolder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	failed := 0
	for i := range 3000 {
		below := randomEntries(rng, 1+rng.Intn(10))
		ents := randomEntries(rng, 1+rng.Intn(30))
		one := []Layer{layer("below", below...), layer("top", ents...)}
		each := []Layer{layer("below", below...)}
		for _, e := range ents {
			each = append(each, layer("top", e))
		}
		v1, err1 := (&Stack{Layers: one}).View()
		v2, err2 := (&Stack{Layers: each}).View()
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("case %d: one layer: %v; entry by entry: %v\nbelow %+v\nentries %+v", i, err1, err2, below, ents)
		}
		if err1 != nil {
			failed++
			continue
		}
		if a, b := exactListing(v1), exactListing(v2); a != b {
			t.Fatalf("case %d: one layer gives\n%s\nentry by entry\n%s\nbelow %+v\nentries %+v", i, a, b, below, ents)
		}
	}
	if failed > 1000 {
		t.Fatalf("%d cases of 3000 failed to merge: too few compared", failed)
	}
}
