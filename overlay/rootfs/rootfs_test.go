package rootfs

import (
	"strings"
	"testing"
)

func TestOptionDefaults(t *testing.T) {
	t.Setenv("BUILDKIT_HOST", "tcp://farm:1234")
	t.Setenv("FLEDGE_STATE_DIR", "/srv/state")
	t.Setenv("XDG_CACHE_HOME", "/srv/cache")
	o, err := withDefaults(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "tcp://farm:1234" || o.StateDir != "/srv/state" || o.CacheDir != "/srv/cache/fledge" || o.Progress != "auto" || o.Out == nil {
		t.Errorf("defaults from the environment: %+v", o)
	}
	t.Setenv("FLEDGE_STATE_DIR", "")
	if o, _ := withDefaults(Options{Addr: "unix:///x"}); o.Addr != "unix:///x" || o.StateDir != DefaultStateDir {
		t.Errorf("explicit address or default state dir lost: %+v", o)
	}
	if _, err := withDefaults(Options{Progress: "fancy"}); err == nil || !strings.Contains(err.Error(), "expected auto, tty, plain, quiet or rawjson") {
		t.Errorf("progress mode fancy: error %v", err)
	}
}

func TestResolveSpecRefusesAmbiguity(t *testing.T) {
	cases := []struct {
		spec Spec
		want string
	}{
		{Spec{}, "neither a Dockerfile nor an image"},
		{Spec{Dockerfile: "Dockerfile", Image: "alpine"}, "expected one of them"},
		{Spec{Image: "alpine\nRUN rm -rf /"}, "white space"},
		{Spec{Image: "alpine", Context: "."}, "only used with a Dockerfile"},
		{Spec{Image: "alpine", NamedContexts: map[string]string{"base": "/no/such/dir"}}, "is not a directory"},
		{Spec{Image: "alpine", NamedContexts: map[string]string{"base": "oci-layout:///tmp@sha256:abc"}}, "64 lowercase hex"},
	}
	for _, c := range cases {
		if _, err := resolveSpec(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.spec, err, c.want)
		}
	}
}
