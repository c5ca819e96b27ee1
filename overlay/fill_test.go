package overlay

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// filler is a Filler that gives, of its candidates, those at paths the
// merged view of the layers around it lacks, as the host libraries layer
// does. Set inPlace, it refuses every stack, which then merges its entries
// in their place, between the layers below and above.
type filler struct {
	below, above []Layer
	candidates   []Entry
	inPlace      bool
}

func (f *filler) Name() string { return "filler" }
func (f *filler) Entries() ([]Entry, error) {
	return f.EntriesFrom(func(l Layer) ([]Entry, error) { return l.Entries() })
}

func (f *filler) EntriesFrom(read func(Layer) ([]Entry, error)) ([]Entry, error) {
	var ls []Layer
	for _, l := range append(slices.Clip(f.below), f.above...) {
		ents, err := read(l)
		if err != nil {
			return nil, err
		}
		ls = append(ls, &Static{LayerName: l.Name(), List: ents})
	}
	v, err := (&Stack{Layers: ls}).View()
	if err != nil {
		return nil, err
	}
	return f.pick(v), nil
}

func (f *filler) EntriesOver(below, above []Layer, over func() (*View, error), read func(Layer) ([]Entry, error)) ([]Entry, bool, error) {
	if f.inPlace || !slices.Equal(below, f.below) || !slices.Equal(above, f.above) {
		return nil, false, nil
	}
	v, err := over()
	if err != nil {
		return nil, true, err
	}
	return f.pick(v), true, nil
}

func (f *filler) pick(v *View) []Entry {
	var ents []Entry
	for _, e := range f.candidates {
		if _, ok := v.Get(e.Path); !ok {
			ents = append(ents, e)
		}
	}
	return ents
}

// TestFillerGoesBeneath: a stack hands a Filler the view of the layers
// around it and puts its entries in that view; the result must be, field
// for field, what merging its entries between the layers below and above
// gives, over random trees where the layers above make folders the filler
// needs, symlink them, make them opaque or delete them.
func TestFillerGoesBeneath(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	filled, merged := 0, 0
	for i := range 3000 {
		below := []Layer{Skeleton(), layer("below", randomEntries(rng, 1+rng.Intn(8))...)}
		above := []Layer{layer("above", randomEntries(rng, rng.Intn(12))...), layer("edits", randomEntries(rng, rng.Intn(4))...)}
		var candidates []Entry
		for _, e := range randomEntries(rng, 1+rng.Intn(12)) {
			if e.Type != Whiteout && (e.Type != Dir || rng.Intn(10) == 0) {
				candidates = append(candidates, e)
			}
		}
		f := &filler{below: below, above: above, candidates: candidates}
		st := &Stack{Layers: append(slices.Clip(below), append([]Layer{f}, above...)...)}
		got, err := st.View()
		f.inPlace = true
		want, wantErr := st.View()
		if err != nil || wantErr != nil {
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("case %d: error %v, merged in place %v", i, err, wantErr)
			}
			continue
		}
		a, b := exactListing(got), exactListing(want)
		if a != b {
			t.Fatalf("case %d: the filler's entries put beneath give\n%s\nmerged in place\n%s\nfiller %+v", i, a, b, candidates)
		}
		if got.voids != nil && strings.Contains(a, "Layer:filler") {
			filled++
		} else {
			merged++
		}
	}
	if filled < 200 || merged < 500 {
		t.Fatalf("%d views filled, %d merged again: want both ways tried often", filled, merged)
	}
}
