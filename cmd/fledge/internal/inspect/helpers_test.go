package inspect

import (
	"os"
	"os/exec"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

func file(p string, perm uint32, data string) overlay.Entry {
	return overlay.Entry{Path: p, Type: overlay.Regular, Perm: permOf(perm), Size: int64(len(data)), Content: overlay.Bytes(data)}
}

func hostFile(t *testing.T, p string, perm uint32, host string) overlay.Entry {
	t.Helper()
	fi, err := os.Stat(host)
	if err != nil {
		t.Fatalf("test input %s: %v", host, err)
	}
	return overlay.Entry{Path: p, Type: overlay.Regular, Perm: permOf(perm), Size: fi.Size(), Content: overlay.HostFile(host), Source: host}
}

func link(p, target string) overlay.Entry {
	return overlay.Entry{Path: p, Type: overlay.Symlink, Perm: 0o777, Linkname: target}
}

func dir(p string, perm uint32) overlay.Entry {
	return overlay.Entry{Path: p, Type: overlay.Dir, Perm: permOf(perm)}
}

func whiteout(p string) overlay.Entry { return overlay.Entry{Path: p, Type: overlay.Whiteout} }

func permOf(m uint32) os.FileMode {
	_, perm, err := overlay.FromUnixMode(m | 0o100000)
	if err != nil {
		panic(err)
	}
	return perm
}

// view merges the skeleton and the given layers, bottom first.
func view(t *testing.T, layers ...*overlay.Static) *overlay.View {
	t.Helper()
	v, _ := viewAndLayers(t, layers...)
	return v
}

// viewAndLayers is view that also returns the stack's layers, for
// CheckOptions.Layers.
func viewAndLayers(t *testing.T, layers ...*overlay.Static) (*overlay.View, []overlay.Layer) {
	t.Helper()
	st := &overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton()}}
	for _, l := range layers {
		st.Layers = append(st.Layers, l)
	}
	v, err := st.View()
	if err != nil {
		t.Fatalf("building the view: %v", err)
	}
	return v, st.Layers
}

func layer(name string, ents ...overlay.Entry) *overlay.Static {
	return &overlay.Static{LayerName: name, List: ents}
}

// staticBusybox is Debian's busybox-static: a real static ELF for images
// that must pass every rule.
func staticBusybox(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found: %v; install the Debian package busybox-static", err)
	}
	return p
}
