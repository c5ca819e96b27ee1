package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Paths in the direct form's flags are the shell's: relative to the
// working directory, as --context and --agent are, not to the context
// folder the flags are read into.
func TestDirectFormBuildContextIsRelativeToTheWorkingDirectory(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"proj", "base", "layout"} {
		if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "proj", "Dockerfile"), []byte("FROM base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(top)
	digest := "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	d := dockerfileFlags{buildContexts: []string{"base=./base", "img=oci-layout://layout@" + digest, "reg=docker-image://alpine:3.20"}}
	r, err := d.recipe("proj/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"base": filepath.Join(top, "base"),
		"img":  "oci-layout://" + filepath.Join(top, "layout") + "@" + digest,
		"reg":  "docker-image://alpine:3.20",
	}
	for k, w := range want {
		if got := r.Source.Contexts[k]; got != w {
			t.Errorf("--build-context %s: got %q, want %q", k, got, w)
		}
	}
}
