package rootfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// connect returns a client of the BuildKit at o.Addr, or of a BuildKit
// started in this process when there is no address, and the function that
// lets it go.
func connect(ctx context.Context, o Options) (*client.Client, func() error, error) {
	if o.Addr != "" {
		c, err := client.New(ctx, o.Addr)
		if err == nil {
			// New does not dial; asking for the daemon's version does, so
			// an address with nothing behind it fails here, clearly.
			_, err = c.Info(ctx)
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("BuildKit at %s (--buildkit-addr, BUILDKIT_HOST) is not reachable: %w; start buildkitd there, or unset both to use the embedded BuildKit", o.Addr, err)
		}
		return c, c.Close, nil
	}
	if err := checkEmbeddedCache(o); err != nil {
		return nil, nil, err
	}
	e, err := startEmbedded(ctx, o.StateDir)
	if err != nil {
		return nil, nil, err
	}
	return e.client, e.Close, nil
}

// solve runs the Dockerfile frontend and writes BuildKit's tar export to out.
func solve(ctx context.Context, c *client.Client, in input, o Options, epoch int64, out io.Writer) error {
	opt, cleanup, err := solveOpt(in, o, epoch, out)
	if err != nil {
		return err
	}
	defer cleanup()
	display, err := progressui.NewDisplay(o.Out, progressui.DisplayMode(o.Progress))
	if err != nil {
		return fmt.Errorf("progress mode %s: %w", o.Progress, err)
	}
	ch := make(chan *client.SolveStatus)
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		_, err := c.Solve(ectx, nil, opt, ch)
		return err
	})
	eg.Go(func() error {
		// The display drains the channel until Solve closes it, even when
		// the build is cancelled, so it gets its own context.
		_, err := display.UpdateFrom(context.WithoutCancel(ctx), ch)
		return err
	})
	if err := eg.Wait(); err != nil {
		return failure(ctx, err, o.Out)
	}
	return nil
}

// solveOpt prepares the frontend attributes, the directories the session
// serves and the tar export. The Dockerfile is served from a private copy of
// the bytes the cache key hashed, so the build and its key cannot disagree.
func solveOpt(in input, o Options, epoch int64, out io.Writer) (client.SolveOpt, func(), error) {
	tmp, err := os.MkdirTemp("", "fledge-dockerfile-")
	if err != nil {
		return client.SolveOpt{}, nil, fmt.Errorf("rootfs: %w", err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	opt, err := buildSolveOpt(in, o, epoch, out, tmp)
	if err != nil {
		cleanup()
		return opt, nil, err
	}
	return opt, cleanup, nil
}

func buildSolveOpt(in input, o Options, epoch int64, out io.Writer, tmp string) (client.SolveOpt, error) {
	var opt client.SolveOpt
	if err := os.WriteFile(filepath.Join(tmp, in.filename), in.dockerfile, 0o644); err != nil {
		return opt, fmt.Errorf("rootfs: %w", err)
	}
	ctxDir := in.context
	if ctxDir == "" {
		ctxDir = filepath.Join(tmp, "empty-context")
		if err := os.Mkdir(ctxDir, 0o755); err != nil {
			return opt, fmt.Errorf("rootfs: %w", err)
		}
	}
	named, dirs, stores, err := contextAttrs(in.named)
	if err != nil {
		return opt, err
	}
	dirs["context"], dirs["dockerfile"] = ctxDir, tmp
	mounts := map[string]fsutil.FS{}
	for id, d := range dirs {
		fs, err := fsutil.NewFS(d)
		if err != nil {
			return opt, fmt.Errorf("rootfs: serving %s: %w", d, err)
		}
		mounts[id] = fs
	}
	return client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: frontendAttrs(in, o, named),
		LocalMounts:   mounts,
		OCIStores:     stores,
		CacheImports:  o.CacheFrom,
		CacheExports:  o.CacheTo,
		Exports: []client.ExportEntry{{
			Type:  client.ExporterTar,
			Attrs: map[string]string{"source-date-epoch": strconv.FormatInt(epoch, 10)},
			Output: func(map[string]string) (io.WriteCloser, error) {
				return nopCloser{out}, nil
			},
		}},
	}, nil
}

// frontendAttrs says what to build. "cmdline" makes the built-in Dockerfile
// frontend ignore a "# syntax=" line, which would otherwise pull a frontend
// image from a registry; a build arg BUILDKIT_SYNTAX is the explicit opt-in.
func frontendAttrs(in input, o Options, named map[string]string) map[string]string {
	attrs := map[string]string{"filename": in.filename}
	if _, ok := in.args["BUILDKIT_SYNTAX"]; !ok {
		attrs["cmdline"] = ""
	}
	if in.target != "" {
		attrs["target"] = in.target
	}
	for k, v := range in.args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range named {
		attrs[k] = v
	}
	if o.Offline {
		attrs["image-resolve-mode"] = "local"
	}
	return attrs
}

// failure turns a solve error into one that names the Dockerfile line, after
// printing the source excerpt BuildKit attached (the step's output has
// already been shown by the progress display).
func failure(ctx context.Context, err error, w io.Writer) error {
	if ctx.Err() != nil {
		return fmt.Errorf("building the Dockerfile: cancelled: %w", context.Cause(ctx))
	}
	where := ""
	for _, s := range errdefs.Sources(err) {
		s.Print(w)
		if where == "" && s.Info != nil && len(s.Ranges) > 0 {
			where = fmt.Sprintf(" at %s:%d", s.Info.Filename, s.Ranges[0].Start.Line)
		}
	}
	return fmt.Errorf("building the Dockerfile failed%s: %w", where, err)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
