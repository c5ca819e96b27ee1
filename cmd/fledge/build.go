package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/packer"
)

type buildFlags struct {
	stackFlags
	manifest    string
	output      string
	compression string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	var df dockerfileFlags
	cmd := &cobra.Command{
		Use:   "build [RECIPE | DOCKERFILE]",
		Short: "Build the initramfs and its plugin manifest from a recipe",
		Long: `build assembles the recipe's layers, writes them as a reproducible newc cpio
archive (gzip-compressed by default) and writes the Volant plugin manifest next
to it. Without -o the outputs are plugin.cpio.gz and plugin.manifest.json in the
recipe's folder. A manifest.toml beside the recipe is used unless -m names
another; missing required fields get documented defaults (see docs/recipe.md).
Edits made through 'fledge mount' are included; build says how many, and
'fledge diff' lists them. A recipe may build over an existing initramfs
([source] initramfs = "./base.cpio.gz"): its entries, with their owners,
modes, devices and times, are the bottom layer (see docs/recipe.md).

The same inputs give the same bytes on any machine: entries are sorted, owners
are root unless a layer carries real ones, and times come from
SOURCE_DATE_EPOCH (or 1970-01-01). A rebuild compresses only what changed
and takes the rest from the cache, with the same bytes as a cold build.

The default mode's init is the one fledge carries prebuilt (x86_64, musl,
static), so no C compiler is needed. FLEDGE_INIT_CC names a compiler
(musl-gcc, gcc or a path) to compile it from fledge's source instead, cached
by source, compiler and flags (see docs/init-modes.md).

A RECIPE argument is the same as -c RECIPE. An argument is read as a recipe
when it is TOML (a name ending in .toml, or TOML content); anything else is a
Dockerfile.

With a DOCKERFILE argument (the direct form) no recipe is read: the flags
marked "with DOCKERFILE" describe the build, --output-initramfs is required,
and NAME defaults to the context folder's name, written in the current folder,
or in the folder above the context when the current folder is inside it: an
artifact inside the context would change it, and the next build would miss
the rootfs cache (see docs/dockerfile.md).
Without --init, a rootfs that has /init keeps it as PID 1 (no fledge init, no
agent); --init default puts fledge's init and the agent there instead.

--cache-from and --cache-to share BuildKit's build cache of a Dockerfile
rootfs between machines (a registry, a folder), in BuildKit's own syntax;
they add to the recipe's source.cache_from and source.cache_to (see
docs/dockerfile.md).`,
		Example: `  fledge build
  fledge build examples/default/fledge.toml -o /tmp/demo
  fledge build -m runtime.toml --compression zstd
  fledge build -o dist/app.cpio.zst      # zstd, chosen by the extension
  SOURCE_DATE_EPOCH=1700000000 fledge build --offline
  FLEDGE_INIT_CC=musl-gcc fledge build   # compile the default init here
  fledge build ./Dockerfile --output-initramfs --build-arg VERSION=1.2 -o dist/app
  fledge build ./Dockerfile --output-initramfs --init default --agent ./kestrel
  fledge build ./Dockerfile --output-initramfs --busybox=false
  fledge build --cache-to type=registry,ref=registry.example/app/cache   # share BuildKit's cache
  fledge build --cache-from type=registry,ref=registry.example/app/cache # use it on another machine`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && !isRecipeArg(args[0]) {
				return runDockerfileBuild(cmd.Context(), cmd, &f, &df, args[0])
			}
			if len(args) == 1 {
				if cmd.Flags().Changed("config") {
					return fmt.Errorf("build %s: -c names a recipe too; give the recipe once", args[0])
				}
				f.config = args[0]
			}
			if err := needDockerfile(cmd); err != nil {
				return err
			}
			return runBuild(cmd.Context(), cmd, &f)
		},
	}
	f.register(cmd)
	f.registerCache(cmd)
	df.register(cmd)
	cmd.Flags().StringVarP(&f.manifest, "manifest", "m", "", "manifest.toml with runtime defaults (default: manifest.toml beside the recipe, if present)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "output NAME, or NAME with an extension that chooses the compression (.cpio.gz, .cpio.zst, .cpio.xz, .cpio.lz4, .cpio); the manifest is NAME.manifest.json (default: plugin in the recipe's folder)")
	cmd.Flags().StringVar(&f.compression, "compression", "", compressionHelp)
	return cmd
}

func runBuild(ctx context.Context, cmd *cobra.Command, f *buildFlags) error {
	r, err := recipe.Load(f.config)
	if err != nil {
		return err
	}
	return buildRecipe(ctx, cmd, f, r)
}

// buildRecipe writes the artifact and manifest of a loaded recipe.
func buildRecipe(ctx context.Context, cmd *cobra.Command, f *buildFlags, r *recipe.Recipe) error {
	// The manifest is read before packing so a mistake in it fails fast.
	m, err := loadManifest(cmd, r, f.manifest)
	if err != nil {
		return err
	}
	out := f.output
	if out == "" {
		out = filepath.Join(r.Dir, "plugin")
	}
	o, err := outputOf(out, f.compression, r)
	if err != nil {
		return err
	}
	st, err := f.assemble(ctx, cmd, r)
	if err != nil {
		return err
	}
	defer st.Close()
	warnOutputMapped(cmd, r, o.artifact)
	if err := noteEdits(cmd, st); err != nil {
		return err
	}
	res, err := packView(ctx, cmd.ErrOrStderr(), &f.stackFlags, st, o.artifact, o.compression)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  sha256:%s\n", o.artifact, humanSize(res.Size), res.SHA256)
	return writeManifest(cmd, m, r, res, o.manifest)
}

// noteEdits says, when the workspace holds edits made through the mount,
// that the build includes them: the artifact then differs from what the
// recipe alone describes.
func noteEdits(cmd *cobra.Command, st layers) error {
	if st.Edits == nil {
		return nil
	}
	// Counting as diff does merges the layers below the edits once more:
	// only worth it when the workspace holds something.
	if ents, err := st.Edits.Entries(); err != nil || len(ents) == 0 {
		return err
	}
	changes, err := editChanges(st)
	if err != nil {
		return err
	}
	switch n := len(changes); n {
	case 0:
	case 1:
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: 1 edit included; `fledge diff` lists it")
	default:
		fmt.Fprintf(cmd.ErrOrStderr(), "fledge: %d edits included; `fledge diff` lists them\n", n)
	}
	return nil
}

// warnOutputMapped warns when the artifact is written inside a mapped
// folder: the next build would pack this artifact into itself, and no two
// builds would give the same bytes.
func warnOutputMapped(cmd *cobra.Command, r *recipe.Recipe, artifact string) {
	abs, err := filepath.Abs(artifact)
	if err != nil {
		return
	}
	for _, m := range r.Mappings {
		if fi, err := os.Stat(m.Host); err == nil && fi.IsDir() && overlay.Within(m.Host, abs) {
			fmt.Fprintf(cmd.ErrOrStderr(), "fledge: warning: %s is inside the mapped folder %s, so the next build will contain it; write it elsewhere with -o\n", artifact, m.Host)
			return
		}
	}
}

// loadManifest reads file, or manifest.toml beside the recipe when file is
// empty and that exists; with neither, the manifest is all defaults.
func loadManifest(cmd *cobra.Command, r *recipe.Recipe, file string) (*recipe.Manifest, error) {
	if file == "" {
		if p := filepath.Join(r.Dir, "manifest.toml"); fileExists(p) {
			file = p
		}
	}
	m, warnings, err := recipe.LoadManifest(file)
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: warning:", w)
	}
	return m, err
}

// writeManifest completes m with the artifact's facts and writes it.
func writeManifest(cmd *cobra.Command, m *recipe.Manifest, r *recipe.Recipe, res packer.Result, dst string) error {
	m.Complete(recipe.ManifestFacts{
		Name:       filepath.Base(r.Dir),
		Entrypoint: recipe.DefaultEntrypoint(r),
		Artifact:   filepath.Base(res.Path),
		SHA256:     res.SHA256,
	})
	if err := writeAtomic(dst, m.WriteJSON); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), dst)
	return nil
}

// packView merges the layers and writes the archive atomically, creating
// its folder as the documented "-o dist/app" expects. Compressed pieces
// are kept in the pieces folder of the cache, so the next pack of a
// slightly different stack compresses only what changed; a cache that
// cannot be written is a warning on stderr.
func packView(ctx context.Context, stderr io.Writer, f *stackFlags, st layers, dst, compression string) (packer.Result, error) {
	// A pack is short and allocates much that it soon drops (the view's
	// nodes, the pieces on their way out): it collects only once its heap
	// nears a quarter of the machine's memory (256 MiB to 4 GiB). A warm
	// pack of the Go source tree then collects never, in 0.080 s where
	// collecting at a fifth of the default rate took 0.088 s, and a cold
	// one peaks at 122 MB where it took 95 MB. GOGC or GOMEMLIMIT, where
	// set, has the last word.
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(packMemoryLimit()))
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
	}
	v, err := viewOf(st)
	if err != nil {
		return packer.Result{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return packer.Result{}, fmt.Errorf("output folder for %s: %w", dst, err)
	}
	opts := packer.Options{Compression: compression, Warn: func(msg string) {
		fmt.Fprintln(stderr, "fledge: warning:", msg)
	}}
	if cache, err := f.cache(); err == nil { // without a cache folder, packs are cold
		opts.CacheDir = filepath.Join(cache, "pieces")
	}
	return packer.WriteFile(ctx, v, dst, opts)
}

// viewOf builds the view of the stack with twice as many Go processors as
// the runtime chose (one per core, or the container's CPU quota), unless
// GOMAXPROCS says otherwise. Reading a large mapped tree is
// short system calls on all cores, and goroutines handing folders to each
// other: with a processor per core, the view of the Go source tree took
// 47 ms on 2 cores, and with two 35 ms (no-change re-pack: 0.087 s, now
// 0.072 s). The pack itself runs with one per core again.
func viewOf(st layers) (*overlay.View, error) {
	if os.Getenv("GOMAXPROCS") == "" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0)))
	}
	return st.View()
}

// packMemoryLimit is a quarter of the machine's memory, within 256 MiB
// and 4 GiB.
func packMemoryLimit() int64 {
	var si syscall.Sysinfo_t
	total := int64(1) << 30
	if syscall.Sysinfo(&si) == nil {
		total = int64(si.Totalram) * int64(si.Unit)
	}
	return min(max(total/4, 256<<20), 4<<30)
}

// extensions has an entry for each of recipe.Compressions
// (TestEveryCompressionHasAnExtensionAndHelp).
var extensions = map[string]string{"gzip": ".cpio.gz", "zstd": ".cpio.zst", "xz": ".cpio.xz", "lz4": ".cpio.lz4", "none": ".cpio"}

const compressionHelp = "archive compression: gzip, zstd, xz (smallest, one core), lz4 (fastest to unpack) or none (default: the extension of -o, else the recipe's output.compression, else gzip)"

// output is where and how an artifact is written.
type output struct {
	artifact, manifest, compression string
}

// outputOf derives the artifact and manifest paths and the compression from
// -o, --compression and the recipe. The compression is the flag's, else the
// one -o's extension names (.cpio.zst is zstd), else the recipe's
// output.compression, else gzip; an extension that disagrees with the flag
// is an error. NAME without an extension gets the compression's.
func outputOf(out, flag string, r *recipe.Recipe) (output, error) {
	base, named := out, ""
	for c, e := range extensions {
		if strings.HasSuffix(out, e) {
			base, named = strings.TrimSuffix(out, e), c
		}
	}
	compression := flag
	switch {
	case flag != "":
		if _, ok := extensions[flag]; !ok {
			return output{}, fmt.Errorf("--compression %q: use one of %s", flag, strings.Join(recipe.Compressions, ", "))
		}
		if named != "" && named != flag {
			return output{}, fmt.Errorf("-o %s names a %s archive but --compression is %s; change one of them", out, named, flag)
		}
	case named != "":
		compression = named
	case r.Output.Compression != "":
		compression = r.Output.Compression
	default:
		compression = packer.Gzip
	}
	if base == "" || strings.HasSuffix(base, "/") {
		return output{}, fmt.Errorf("-o %q: expected a file name such as dist/plugin", out)
	}
	return output{base + extensions[compression], base + ".manifest.json", compression}, nil
}

// maxRecipe bounds what isRecipeArg reads: recipes are a few hundred bytes.
const maxRecipe = 1 << 20

// isRecipeArg reports whether build's argument is a recipe: its name ends
// in .toml (so a broken recipe gets the recipe's message), or its content
// is TOML. A missing or unreadable file is left to the Dockerfile path,
// which names it.
func isRecipeArg(arg string) bool {
	if strings.HasSuffix(arg, ".toml") {
		return true
	}
	fi, err := os.Stat(arg)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxRecipe {
		return false
	}
	data, err := os.ReadFile(arg)
	return err == nil && recipe.IsRecipe(data)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
