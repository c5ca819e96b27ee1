package recipe

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// closingLayer is a base layer that records whether it was released.
type closingLayer struct {
	overlay.Static
	closed int
}

func (l *closingLayer) Close() error {
	l.closed++
	return nil
}

// TestAssembleReleasesTheBase: the base's stream is released once, by
// Close after use, or by Assemble itself when a layer above the base
// cannot be had (here BusyBox, from a file that is not there).
func TestAssembleReleasesTheBase(t *testing.T) {
	for _, busybox := range []string{"busybox = false", `busybox_url = "file:///nonexistent/busybox"`} {
		dir := recipeDir(t)
		r, err := parse(t, dir, head+"[init]\nnone = true\n[source]\ninitramfs = \"./app\"\n"+busybox+"\n")
		if err != nil {
			t.Fatal(err)
		}
		var opened []string
		base := &closingLayer{Static: overlay.Static{LayerName: BaseLayer}}
		open := func(path, layer string) (overlay.Layer, error) {
			opened = append(opened, path+" as "+layer)
			return base, nil
		}
		st, err := Assemble(context.Background(), r, nil, Options{CacheDir: t.TempDir(), Offline: true, OpenBase: open})
		want := filepath.Join(dir, "app") + " as initramfs"
		if len(opened) != 1 || opened[0] != want {
			t.Fatalf("%s: base opened as %q, want [%s]", busybox, opened, want)
		}
		if wantErr := busybox != "busybox = false"; wantErr != (err != nil) {
			t.Fatalf("%s: err %v, want an error: %v", busybox, err, wantErr)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "busybox") || base.closed != 1 {
				t.Errorf("%s: err %v, base closed %d times; want a busybox error and the base closed once", busybox, err, base.closed)
			}
			continue
		}
		if st.Layers[1] != base || base.closed != 0 {
			t.Fatalf("%s: layers %v, base closed %d times; want the base above the skeleton, open", busybox, st.Layers, base.closed)
		}
		if err := Close(st); err != nil || base.closed != 1 {
			t.Errorf("%s: Close: %v, base closed %d times, want once", busybox, err, base.closed)
		}
	}
}
