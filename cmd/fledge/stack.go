package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
	"github.com/volantvm/fledge/overlay/fetch"
	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/overlay/rootfs"
	"github.com/volantvm/fledge/packer"
)

// stackFlags are the flags of every command that reads a recipe.
type stackFlags struct {
	config       string
	cacheDir     string
	offline      bool
	buildkitAddr string
	progress     string
}

func (f *stackFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "fledge.toml", "recipe to read; relative paths in it resolve against its folder")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache for downloads, the compiled init, BuildKit output and the compressed pieces that make gzip re-packs fast (default $XDG_CACHE_HOME/fledge; pieces/ is pruned to $FLEDGE_PACK_CACHE_SIZE, default 1G)")
	fl.BoolVar(&f.offline, "offline", false, "use only what is in the cache; fail instead of downloading")
	fl.StringVar(&f.buildkitAddr, "buildkit-addr", os.Getenv("BUILDKIT_HOST"), "BuildKit daemon for Dockerfile rootfs builds (unix:// or tcp://); default: embedded BuildKit (needs root and runc)")
	fl.StringVar(&f.progress, "progress", "auto", "BuildKit progress output: auto, tty, plain or quiet")
}

// layers is what an image is made of, as the mount, the packer and the
// inspectors take it: the stack below the edits, and the workspace's edits
// over it.
type layers struct {
	Lower *overlay.Stack
	Edits *edits.Edits // nil for none: an artifact, which mounts read-only
}

// View merges the layers, the edits on top.
func (l layers) View() (*overlay.View, error) {
	st := l.Lower
	if l.Edits != nil {
		st = &overlay.Stack{Layers: append(slices.Clip(l.Lower.Layers), l.Edits), Epoch: l.Lower.Epoch}
	}
	return st.View()
}

// load reads the recipe and assembles its layers.
func (f *stackFlags) load(ctx context.Context, cmd *cobra.Command) (*recipe.Recipe, layers, error) {
	r, err := recipe.Load(f.config)
	if err != nil {
		return nil, layers{}, err
	}
	st, err := f.assemble(ctx, cmd, r)
	if err == nil {
		warnUnreadableEdits(cmd, st.Edits)
	}
	return r, st, err
}

// assemble builds the layers of a loaded recipe: its stack, and the edits
// of its workspace.
func (f *stackFlags) assemble(ctx context.Context, cmd *cobra.Command, r *recipe.Recipe) (layers, error) {
	epoch, err := sourceDateEpoch()
	if err != nil {
		return layers{}, err
	}
	cache, err := f.cache()
	if err != nil {
		return layers{}, err
	}
	ed := edits.Open(edits.Dir(r.Dir))
	lower, err := recipe.Assemble(ctx, r, ed, recipe.Options{
		CacheDir: cache,
		Offline:  f.offline,
		Progress: cmd.ErrOrStderr(),
		Epoch:    epoch,
		BuildKit: rootfs.Options{
			Addr:     f.buildkitAddr,
			CacheDir: cache,
			Progress: f.progress,
			Out:      cmd.ErrOrStderr(),
			Offline:  f.offline,
		},
	})
	return layers{Lower: lower, Edits: ed}, err
}

func (f *stackFlags) cache() (string, error) {
	if f.cacheDir != "" {
		return f.cacheDir, nil
	}
	return fetch.DefaultDir()
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org), the
// time given to entries that carry none; unset means the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return overlay.DefaultEpoch, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: expected a non-negative number of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// target is what an inspecting command works on: a recipe's layers or an
// existing artifact opened as a stack of one read-only layer.
type target struct {
	Recipe   *recipe.Recipe // nil for an artifact
	Artifact string         // the artifact path, "" for a recipe
	Stack    layers
	close    func() error
}

// Close releases the artifact's decompressed stream, if any.
func (t *target) Close() error {
	if t.close == nil {
		return nil
	}
	return t.close()
}

// Name is the recipe file or artifact path, for messages.
func (t *target) Name() string {
	if t.Recipe != nil {
		return t.Recipe.File
	}
	return t.Artifact
}

// open returns the target named by arg: an artifact (a newc archive, plain
// or compressed as the kernel reads it, recognised by content) or a recipe;
// with no arg, the -c recipe.
func (f *stackFlags) open(ctx context.Context, cmd *cobra.Command, arg string) (*target, error) {
	if arg != "" && isArtifactArg(arg) {
		cache, err := f.cache()
		if err != nil {
			return nil, err
		}
		a, err := packer.OpenArtifact(arg, cache)
		if err != nil {
			return nil, err
		}
		epoch, err := sourceDateEpoch()
		if err != nil {
			a.Close()
			return nil, err
		}
		return &target{Artifact: arg, Stack: layers{Lower: &overlay.Stack{Layers: []overlay.Layer{a}, Epoch: epoch}}, close: a.Close}, nil
	}
	if arg != "" {
		f.config = arg
	}
	r, st, err := f.load(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &target{Recipe: r, Stack: st}, nil
}

// isArtifactArg reports whether arg is to be opened as an artifact: its
// content says so, or its name does, or it is no text at all. A damaged,
// missing or foreign file named like an artifact then gets the archive
// reader's message instead of a TOML error.
func isArtifactArg(arg string) bool {
	return isArtifact(arg) || (!strings.HasSuffix(arg, ".toml") && packer.IsBinary(arg))
}

// isArtifact reports whether arg is an artifact by its name or its content.
// Unlike isArtifactArg it does not take any binary file for one, so a lone
// absolute argument such as /lib/x86_64-linux-gnu/libc.so.6 stays a path
// in the image even where the host has that file.
func isArtifact(arg string) bool {
	for _, ext := range artifactExtensions {
		if strings.HasSuffix(arg, ext) {
			return true
		}
	}
	return packer.IsArtifact(arg)
}

// artifactExtensions are the names initramfs images commonly go by.
var artifactExtensions = []string{".cpio", ".cpio.gz", ".cpio.zst", ".cpio.xz", ".cpio.lz4", ".cpio.bz2", ".cpio.lzma", ".cpio.lzo"}
