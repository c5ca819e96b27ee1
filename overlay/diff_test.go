package overlay

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	a := &Stack{Layers: []Layer{&Static{LayerName: "a", List: []Entry{
		{Path: "/same", Type: Regular, Perm: 0o644, Content: Bytes("x")},
		{Path: "/content", Type: Regular, Perm: 0o644, Content: Bytes("old")},
		{Path: "/mode", Type: Regular, Perm: 0o644, Content: Bytes("m")},
		{Path: "/owner", Type: Regular, Perm: 0o644, Content: Bytes("o")},
		{Path: "/link", Type: Symlink, Perm: 0o777, Linkname: "same"},
		{Path: "/gone", Type: Dir, Perm: 0o755},
	}}}}
	b := &Stack{Layers: []Layer{&Static{LayerName: "b", List: []Entry{
		{Path: "/same", Type: Regular, Perm: 0o644, Content: Bytes("x")},
		{Path: "/content", Type: Regular, Perm: 0o644, Content: Bytes("new")},
		{Path: "/mode", Type: Regular, Perm: 0o755, Content: Bytes("m")},
		{Path: "/owner", Type: Regular, Perm: 0o644, UID: 1, GID: 2, Content: Bytes("o")},
		{Path: "/link", Type: Symlink, Perm: 0o777, Linkname: "content"},
		{Path: "/new", Type: CharDev, Perm: 0o600, Major: 1, Minor: 3},
	}}}}
	va, err := a.View()
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Diff(va, vb)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range changes {
		lines = append(lines, c.Kind+" "+c.Path+" "+c.Detail)
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"changed /content content sha256 ",
		"removed /gone dir",
		"changed /link target same -> content",
		"changed /mode mode 0644 -> 0755",
		"added /new chardev",
		"changed /owner owner 0:0 -> 1:2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
	if len(changes) != 6 {
		t.Errorf("%d changes, want 6 (/same and / unchanged):\n%s", len(changes), got)
	}
}
