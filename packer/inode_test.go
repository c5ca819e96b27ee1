package packer

import (
	"fmt"
	"math"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// collidingNames returns two names whose inode numbers from the name hash
// are the same, found by counting (a collision in 2^32 comes after some
// 80 000 names).
func collidingNames(t *testing.T) (string, string) {
	t.Helper()
	seen := map[uint64]string{}
	for i := range 1 << 21 {
		name := fmt.Sprintf("/c/%d", i)
		ino := nameHash(name)%math.MaxUint32 + 1
		if other, ok := seen[ino]; ok {
			return other, name
		}
		seen[ino] = name
	}
	t.Fatal("no two names share an inode number")
	return "", ""
}

// TestInodeCollisionMovesOn packs two names that hash to one inode number,
// the first of them a hard link: the later name in the walk takes the next
// number, the link's other member keeps sharing the first's, every record
// keeps a 32-bit number of its own, and a second plan numbers all the same.
func TestInodeCollisionMovesOn(t *testing.T) {
	a, b := collidingNames(t)
	// The walk goes by name within /c, whichever the counter found first.
	first, second := min(a, b), max(a, b)
	want := nameHash(first)%math.MaxUint32 + 1
	v := viewOf(t, &overlay.Static{LayerName: "c", List: []overlay.Entry{
		{Path: first, Type: overlay.Regular, Perm: 0o644, LinkID: "L", Content: overlay.Bytes("x")},
		{Path: second, Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("y")},
		{Path: "/z/link", Type: overlay.Regular, Perm: 0o644, LinkID: "L", Content: overlay.Bytes("x")},
	}})
	plans := [2]map[string]uint64{}
	for i := range plans {
		recs, err := plan(v)
		if err != nil {
			t.Fatal(err)
		}
		plans[i] = map[string]uint64{}
		byIno := map[uint64]string{}
		for _, r := range recs {
			plans[i][r.node.Path] = r.ino
			if r.ino == 0 || r.ino > math.MaxUint32 {
				t.Errorf("%s: inode %d is not a newc inode number", r.node.Path, r.ino)
			}
			if other, ok := byIno[r.ino]; ok && r.node.LinkID == "" {
				t.Errorf("%s and %s share inode %d", other, r.node.Path, r.ino)
			}
			byIno[r.ino] = r.node.Path
		}
	}
	p := plans[0]
	if p[first] != want || p[second] != want%math.MaxUint32+1 {
		t.Errorf("%s is inode %d and %s %d; want %d and the next", first, p[first], second, p[second], want)
	}
	if p["/z/link"] != p[first] {
		t.Errorf("the hard link /z/link is inode %d, its other name %d", p["/z/link"], p[first])
	}
	if fmt.Sprint(plans[0]) != fmt.Sprint(plans[1]) {
		t.Errorf("two plans of one view number differently: %v, %v", plans[0], plans[1])
	}
}
