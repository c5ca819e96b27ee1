// Package rootfs builds a Dockerfile (or an image) into the rootfs layer of
// an initramfs with BuildKit, and reads BuildKit's tar export as the layer.
//
// BuildKit is embedded by default: its controller and OCI (runc) worker run
// inside the fledge process, served over an in-memory gRPC connection, with
// state under /var/lib/fledge/buildkit ($FLEDGE_STATE_DIR), flocked against a
// second fledge. That needs root and runc. Options.Addr (--buildkit-addr,
// $BUILDKIT_HOST) uses a BuildKit daemon instead; the result is the same.
//
// The Dockerfile frontend built into BuildKit is always used: a "# syntax="
// line is ignored, so no frontend image is pulled. The build arg
// BUILDKIT_SYNTAX=IMAGE is the explicit opt-in to a frontend image.
//
// Named build contexts (recipe key [source] contexts = { NAME = "VALUE" },
// flag --build-context NAME=VALUE) let FROM NAME and COPY --from=NAME read a
// host directory, a local OCI layout ("oci-layout://DIR@sha256:…", or
// "oci-layout://DIR" when the layout holds one manifest), or anything
// BuildKit resolves itself (docker-image://REF, a git or https URL).
//
// The result is cached under CacheDir/rootfs by the build's inputs, so an
// unchanged Dockerfile and context are served without starting BuildKit.
// BuildKit's own build cache can be shared between machines through cache
// imports and exports (Options.CacheFrom, CacheTo: a registry, a local
// folder, …).
// File times in the result are SOURCE_DATE_EPOCH (or 1970), which makes
// the embedded and an external BuildKit give the same bytes.
package rootfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moby/buildkit/client"

	"github.com/volantvm/fledge/overlay"
)

// Spec says what to build.
type Spec struct {
	Dockerfile string            // host path of the Dockerfile
	Context    string            // host dir (default: the Dockerfile's dir)
	Target     string            // stage to build (default: the last)
	BuildArgs  map[string]string // ARG values; BUILDKIT_SYNTAX opts into a "# syntax=" frontend
	Image      string            // build as `FROM <image>` (no Dockerfile)
	// NamedContexts maps a name used in FROM/COPY --from to a value: a host
	// directory, "oci-layout://DIR@sha256:…" (a local OCI layout; the digest
	// may be left out when the layout holds one manifest), or any value
	// BuildKit takes itself ("docker-image://…", a git or https URL).
	NamedContexts map[string]string
}

// Options says how to build.
type Options struct {
	Addr     string    // BuildKit address (unix://, tcp://); "" = $BUILDKIT_HOST, else embedded
	StateDir string    // embedded state; default $FLEDGE_STATE_DIR or /var/lib/fledge/buildkit
	CacheDir string    // fledge cache dir; default $XDG_CACHE_HOME/fledge
	Progress string    // auto|tty|plain|quiet (default auto)
	Out      io.Writer // progress destination (default stderr)
	// Offline resolves base images from what BuildKit already holds, never
	// from a registry.
	Offline bool
	// CacheFrom and CacheTo are BuildKit cache imports and exports (see
	// ParseCacheFrom, ParseCacheTo). They change how fast a build is, never
	// its result, so they are no part of the cache key; but a build with
	// CacheTo always runs BuildKit, even when the result is cached, so that
	// the export happens.
	CacheFrom, CacheTo []client.CacheOptionsEntry
}

// DefaultStateDir is where embedded BuildKit keeps its state unless
// FLEDGE_STATE_DIR says otherwise.
const DefaultStateDir = "/var/lib/fledge/buildkit"

// Build builds s and returns its root file system as the layer "rootfs".
func Build(ctx context.Context, s Spec, o Options) (overlay.Layer, error) {
	in, err := resolveSpec(s)
	if err != nil {
		return nil, err
	}
	o, err = withDefaults(o)
	if err != nil {
		return nil, err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return nil, err
	}
	key, err := cacheKey(in, epoch)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.CacheDir, "rootfs")
	cached := filepath.Join(dir, key+".tar")
	if _, err := os.Stat(cached); err == nil && len(o.CacheTo) == 0 {
		return OpenTar(cached)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	if err := buildInto(ctx, in, o, epoch, cached); err != nil {
		return nil, err
	}
	return OpenTar(cached)
}

// buildInto runs the build and stores the tar at dst atomically: a failed or
// cancelled build leaves nothing that a later run could take for a result.
func buildInto(ctx context.Context, in input, o Options, epoch int64, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".build-*.tar")
	if err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	c, stop, err := connect(ctx, o)
	if err != nil {
		return err
	}
	err = solve(ctx, c, in, o, epoch, tmp)
	if cerr := stop(); err == nil && cerr != nil {
		err = fmt.Errorf("stopping BuildKit: %w", cerr)
	}
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	return nil
}

func withDefaults(o Options) (Options, error) {
	if o.Addr == "" {
		o.Addr = os.Getenv("BUILDKIT_HOST")
	}
	if o.StateDir == "" {
		o.StateDir = os.Getenv("FLEDGE_STATE_DIR")
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("rootfs cache: %w (set XDG_CACHE_HOME)", err)
		}
		o.CacheDir = filepath.Join(d, "fledge")
	}
	switch o.Progress {
	case "":
		o.Progress = "auto"
	case "auto", "tty", "plain", "quiet", "rawjson":
	default:
		return o, fmt.Errorf("progress mode %q: expected auto, tty, plain, quiet or rawjson", o.Progress)
	}
	if o.Out == nil {
		o.Out = os.Stderr
	}
	return o, nil
}
