package rootfs

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
)

// buildOCILayout builds the Dockerfile in dir with BuildKit's OCI exporter and
// unpacks the result into a local OCI layout, the kind of directory a base
// image arrives in on a machine without a registry.
func buildOCILayout(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	e, err := startEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	archive := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Solve(ctx, nil, client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: map[string]string{"filename": "Dockerfile", "cmdline": ""},
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports: []client.ExportEntry{{Type: client.ExporterOCI, Output: func(map[string]string) (io.WriteCloser, error) {
			return nopCloser{f}, nil
		}}},
	}, nil)
	if err != nil {
		t.Fatalf("building the base image: %v", err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", archive, "-C", layout).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the OCI layout: %v: %s", err, out)
	}
	return layout
}

func TestBuildFromLocalOCILayoutContext(t *testing.T) {
	needRootAndRunc(t)
	base := writeContext(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo from-the-layout > /base-marker\"]\n")
	layout := buildOCILayout(t, base)
	digest, err := soleManifest(layout)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, "FROM base\nRUN [\"/bin/busybox\", \"cp\", \"/base-marker\", \"/derived\"]\n")
	for _, value := range []string{ociScheme + layout, ociScheme + layout + "@" + digest} {
		o := testOptions(t, io.Discard)
		l, err := Build(context.Background(), Spec{
			Dockerfile:    filepath.Join(dir, "Dockerfile"),
			NamedContexts: map[string]string{"base": value},
		}, o)
		if err != nil {
			t.Fatalf("base=%s: %v", value, err)
		}
		if got := read(t, entriesByPath(t, l)["/derived"]); got != "from-the-layout\n" {
			t.Errorf("base=%s: /derived = %q, want the base image's marker", value, got)
		}
	}
}

// A "# syntax=" line would send BuildKit to a registry for a frontend image;
// this machine has none, so the build only succeeds if the line is ignored.
func TestBuildIgnoresSyntaxLine(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "# syntax=docker/dockerfile:1.7\nFROM scratch\nCOPY owned.txt /owned.txt\n")
	l, err := Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, testOptions(t, io.Discard))
	if err != nil {
		t.Fatalf("a Dockerfile with a syntax line did not build offline: %v", err)
	}
	if got := read(t, entriesByPath(t, l)["/owned.txt"]); got != "owned\n" {
		t.Errorf("/owned.txt = %q", got)
	}
}

func TestBuildImageSpec(t *testing.T) {
	needRootAndRunc(t)
	l, err := Build(context.Background(), Spec{Image: "scratch"}, testOptions(t, io.Discard))
	if err != nil {
		t.Fatalf("building FROM scratch as an image: %v", err)
	}
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Path != "/" {
			t.Errorf("FROM scratch gave %s", e.Path)
		}
	}
}

// BUILDKIT_SYNTAX is the explicit opt-in: the frontend image is then looked
// up, which on this registry-less machine fails naming it.
func TestBuildSyntaxOptInReachesForTheFrontend(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY owned.txt /owned.txt\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Build(ctx, Spec{Dockerfile: filepath.Join(dir, "Dockerfile"), BuildArgs: map[string]string{"BUILDKIT_SYNTAX": "docker/dockerfile:1.7"}}, testOptions(t, io.Discard))
	if err == nil || !strings.Contains(err.Error(), "docker/dockerfile:1.7") {
		t.Fatalf("error %v, want a failure naming the frontend image", err)
	}
	t.Log(err)
}
