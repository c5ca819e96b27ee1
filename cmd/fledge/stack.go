package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/fetch"
	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/overlay/rootfs"
	"github.com/volantvm/fledge/packer"
)

// stackFlags are the flags of every command that reads a recipe.
type stackFlags struct {
	config       string
	named        bool // the recipe was an argument rather than -c or the default
	cacheDir     string
	offline      bool
	buildkitAddr string
	progress     string
}

func (f *stackFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "fledge.toml", "recipe to read; relative paths in it resolve against its folder")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache for downloads, the compiled init, BuildKit output and the compressed pieces that make re-packs fast (default $XDG_CACHE_HOME/fledge; pieces/ is pruned to $FLEDGE_PACK_CACHE_SIZE, default 1G)")
	fl.BoolVar(&f.offline, "offline", false, "use only what is in the cache; fail instead of downloading")
	fl.StringVar(&f.buildkitAddr, "buildkit-addr", os.Getenv("BUILDKIT_HOST"), "BuildKit daemon for Dockerfile rootfs builds (unix:// or tcp://); default: embedded BuildKit (needs root and runc)")
	fl.StringVar(&f.progress, "progress", "auto", "BuildKit progress output: auto, tty, plain or quiet")
}

// load reads the recipe and assembles its layer stack.
func (f *stackFlags) load(ctx context.Context, cmd *cobra.Command) (*recipe.Recipe, *overlay.Stack, error) {
	if err := f.resolve(cmd); err != nil {
		return nil, nil, err
	}
	r, err := recipe.Load(f.config)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.assemble(ctx, cmd, r)
	if err == nil {
		warnUnreadableEdits(cmd, st)
	}
	return r, st, err
}

// assemble builds the layer stack of a loaded recipe.
func (f *stackFlags) assemble(ctx context.Context, cmd *cobra.Command, r *recipe.Recipe) (*overlay.Stack, error) {
	epoch, err := sourceDateEpoch()
	if err != nil {
		return nil, err
	}
	cache, err := f.cache()
	if err != nil {
		return nil, err
	}
	return recipe.Assemble(ctx, r, recipe.Options{
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
}

// resolve makes f.config the recipe file to read: a folder stands for the
// fledge.toml in it. A missing recipe is reported with its absolute path,
// and only the default one with a hint at -c.
func (f *stackFlags) resolve(cmd *cobra.Command) error {
	if fi, err := os.Stat(f.config); err == nil && fi.IsDir() {
		f.config = filepath.Join(f.config, "fledge.toml")
	}
	if _, err := os.Lstat(f.config); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	abs, err := filepath.Abs(f.config)
	if err != nil {
		return err
	}
	if f.named || cmd.Flags().Changed("config") {
		return fmt.Errorf("recipe %s not found: %s does not exist", f.config, abs)
	}
	return fmt.Errorf("recipe %s not found: %s does not exist; name a recipe with -c FILE (or a folder holding fledge.toml), or create one (see examples/)", f.config, abs)
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

// target is what an inspecting command works on: a recipe's stack or an
// existing artifact opened as a stack of one read-only layer.
type target struct {
	Recipe   *recipe.Recipe // nil for an artifact
	Artifact string         // the artifact path, "" for a recipe
	Stack    *overlay.Stack
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
// or compressed as the kernel reads it, recognised by content) or a recipe
// (a file, or a folder holding fledge.toml); with no arg, the -c recipe.
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
		return &target{Artifact: arg, Stack: &overlay.Stack{Layers: []overlay.Layer{a}, Epoch: epoch}, close: a.Close}, nil
	}
	if arg != "" {
		if isForeignFile(arg) {
			return nil, fmt.Errorf("%s is neither a recipe (it has no version = or strategy = line) nor an artifact (no cpio or compression magic); name a fledge.toml, a folder holding one, or an initramfs", arg)
		}
		f.config, f.named = arg, true
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

// isTargetArg reports whether an argument names a recipe or an artifact
// on the host rather than a path in the image. An existing file is told by
// its content (or a .toml name), and a relative one that is no text at all
// is taken for a damaged artifact; a folder is a recipe when it holds
// fledge.toml. A missing relative name, or one the caller may not reach, is
// a target when it is named like one, so opening it says what is wrong;
// any other name that is no target on the host (/etc,
// /lib/x86_64-linux-gnu/libc.so.6, usr/bin) is a path in the image.
func isTargetArg(arg string) bool {
	fi, err := os.Stat(arg)
	switch {
	case err != nil:
		named := strings.HasSuffix(arg, ".toml") || isArtifact(arg)
		return named && (!strings.HasPrefix(arg, "/") || errors.Is(err, fs.ErrPermission))
	case fi.IsDir():
		return fileExists(filepath.Join(arg, "fledge.toml"))
	}
	if !strings.HasPrefix(arg, "/") && packer.IsBinary(arg) {
		return true // a relative binary is refused with its first bytes
	}
	return strings.HasSuffix(arg, ".toml") || isArtifact(arg) || (fi.Mode().IsRegular() && isRecipeText(arg))
}

// isForeignFile reports whether arg is a host file that is neither a
// recipe nor an artifact by content or name, such as a mapped text file.
func isForeignFile(arg string) bool {
	fi, err := os.Stat(arg)
	return err == nil && fi.Mode().IsRegular() && !isTargetArg(arg) && !packer.IsBinary(arg)
}

// recipeKey finds a top-level key every recipe has, at the start of a line.
var recipeKey = regexp.MustCompile(`(?m)^[ \t]*(version|strategy)[ \t]*=`)

// isRecipeText reports whether the file at p reads as a fledge recipe:
// TOML with a version or strategy key in its first 64 KiB.
func isRecipeText(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, head)
	return recipeKey.Match(head[:n])
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
