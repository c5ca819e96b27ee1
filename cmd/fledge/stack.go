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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/initc"
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
	named        bool // the recipe was an argument rather than -c or the default
	cacheDir     string
	offline      bool
	buildkitAddr string
	progress     string
	cacheFrom    []string // BuildKit cache imports, see registerCache
	cacheTo      []string
}

func (f *stackFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "fledge.toml", "recipe to read; relative paths in it resolve against its folder")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache for downloads, the init compiled with $FLEDGE_INIT_CC, BuildKit output and the compressed pieces that make re-packs fast (default $XDG_CACHE_HOME/fledge; pieces/ is pruned to $FLEDGE_PACK_CACHE_SIZE, default 1G)")
	fl.BoolVar(&f.offline, "offline", false, "use only what is in the cache; fail instead of downloading")
	fl.StringVar(&f.buildkitAddr, "buildkit-addr", os.Getenv("BUILDKIT_HOST"), "BuildKit daemon for Dockerfile rootfs builds (unix:// or tcp://); default: embedded BuildKit (needs root and runc)")
	fl.StringVar(&f.progress, "progress", "auto", "BuildKit progress output: auto, tty, plain, quiet or rawjson (BuildKit's status stream as JSON lines)")
}

// registerCache adds the flags that share BuildKit's build cache between
// machines, for the commands that build (build, pack, mount).
func (f *stackFlags) registerCache(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "BuildKit cache to import for a Dockerfile rootfs (repeatable), in BuildKit's syntax: type=registry,ref=HOST/REPO:TAG or type=local,src=DIR (added to source.cache_from)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "BuildKit cache to export after a Dockerfile rootfs build (repeatable): type=registry,ref=HOST/REPO:TAG[,mode=max], type=local,dest=DIR or type=inline (added to source.cache_to); BuildKit then runs even when fledge's cache has the rootfs")
}

// layers is what an image is made of, as the mount, the packer and the
// inspectors take it: the stack below the edits, and the workspace's edits
// over it.
type layers struct {
	Lower *overlay.Stack
	Edits *edits.Edits // nil for none: an artifact, which mounts read-only
}

// Close releases what the layers hold open (a base initramfs's stream).
func (l layers) Close() error {
	if l.Lower == nil {
		return nil
	}
	return recipe.Close(l.Lower)
}

// View merges the layers, the edits on top.
func (l layers) View() (*overlay.View, error) {
	return (&overlay.Stack{Layers: l.All(), Epoch: l.Lower.Epoch}).View()
}

// All lists the layers bottom first, the edits last.
func (l layers) All() []overlay.Layer {
	if l.Edits == nil {
		return l.Lower.Layers
	}
	return append(slices.Clip(l.Lower.Layers), l.Edits)
}

// load reads the recipe and assembles its layers.
func (f *stackFlags) load(ctx context.Context, cmd *cobra.Command) (*recipe.Recipe, layers, error) {
	if err := f.resolve(cmd); err != nil {
		return nil, layers{}, err
	}
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
	cacheFrom, err := rootfs.ParseCacheFrom("--cache-from", f.cacheFrom, filepath.Abs)
	if err != nil {
		return layers{}, err
	}
	cacheTo, err := rootfs.ParseCacheTo("--cache-to", f.cacheTo, filepath.Abs)
	if err != nil {
		return layers{}, err
	}
	if (len(f.cacheFrom) > 0 || len(f.cacheTo) > 0) && !r.HasRootfs() {
		return layers{}, fmt.Errorf("--cache-from and --cache-to share the build cache of BuildKit, but %s builds no Dockerfile or image rootfs (source.dockerfile, source.image); leave them out", r.File)
	}
	ed := edits.Open(edits.Dir(r.Dir))
	lower, err := recipe.Assemble(ctx, r, ed, recipe.Options{
		CacheDir: cache,
		InitCC:   os.Getenv(initc.CompilerEnv),
		Offline:  f.offline,
		Progress: cmd.ErrOrStderr(),
		Epoch:    epoch,
		BuildKit: rootfs.Options{
			Addr:      f.buildkitAddr,
			CacheDir:  cache,
			Progress:  f.progress,
			Out:       cmd.ErrOrStderr(),
			Offline:   f.offline,
			CacheFrom: cacheFrom,
			CacheTo:   cacheTo,
		},
		OpenBase: func(path, layer string) (overlay.Layer, error) {
			a, err := packer.OpenArtifactAs(path, cache, layer)
			if err != nil {
				return nil, err
			}
			return a, nil
		},
	})
	return layers{Lower: lower, Edits: ed}, err
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

// target is what an inspecting command works on: a recipe's layers or an
// existing artifact opened as a stack of one read-only layer.
type target struct {
	Recipe   *recipe.Recipe // nil for an artifact
	Artifact string         // the artifact path, "" for a recipe
	Stack    layers
	// Workspace is the folder of the edits and the mount lock; set by
	// openWorkspace.
	Workspace string
	art       *packer.Artifact
	close     func() error
}

// Close releases the decompressed stream of the artifact or of the
// recipe's base initramfs, if any.
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
		return &target{Artifact: arg, Stack: layers{Lower: &overlay.Stack{Layers: []overlay.Layer{a}, Epoch: epoch}}, art: a, close: a.Close}, nil
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
	return &target{Recipe: r, Stack: st, close: st.Close}, nil
}

// openWorkspace is open for the commands that work on a workspace (mount,
// diff, reset, pack): an artifact comes with the edits kept in its
// workspace, ws or the default one (see artifactWorkspace); a recipe with
// those of .fledge beside it, and ws must be empty.
func (f *stackFlags) openWorkspace(ctx context.Context, cmd *cobra.Command, arg, ws string) (*target, error) {
	t, err := f.open(ctx, cmd, arg)
	if err != nil {
		return nil, err
	}
	if t.Recipe != nil {
		if ws != "" {
			return nil, fmt.Errorf("--workspace %s: a recipe's workspace is always %s beside it; --workspace is for artifacts", ws, overlay.Workspace)
		}
		t.Workspace = filepath.Join(t.Recipe.Dir, overlay.Workspace)
		return t, nil
	}
	if t.Workspace, err = artifactWorkspace(arg, ws); err == nil {
		t.Stack.Edits, err = artifactEdits(cmd, t, t.Workspace)
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	warnUnreadableEdits(cmd, t.Stack.Edits)
	return t, nil
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
