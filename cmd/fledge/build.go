package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
		Use:   "build [DOCKERFILE]",
		Short: "Build the initramfs and its plugin manifest from a recipe",
		Long: `build assembles the recipe's layers, writes them as a reproducible newc cpio
archive (gzip-compressed by default) and writes the Volant plugin manifest next
to it. Without -o the outputs are plugin.cpio.gz and plugin.manifest.json in the
recipe's folder. A manifest.toml beside the recipe is used unless -m names
another; missing required fields get documented defaults (see docs/recipe.md).

The same inputs give the same bytes on any machine: entries are sorted, owners
are root unless a layer carries real ones, and times come from
SOURCE_DATE_EPOCH (or 1970-01-01). A gzip rebuild compresses only what changed
and takes the rest from the cache, with the same bytes as a cold build.

With a DOCKERFILE argument (the direct form) no recipe is read: the flags
marked "with DOCKERFILE" describe the build, --output-initramfs is required,
and NAME defaults to the context folder's name (see docs/dockerfile.md).`,
		Example: `  fledge build
  fledge build -c examples/default/fledge.toml -o /tmp/demo
  fledge build -m runtime.toml --compression zstd
  SOURCE_DATE_EPOCH=1700000000 fledge build --offline
  fledge build ./Dockerfile --output-initramfs --build-arg VERSION=1.2 -o dist/app`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return runDockerfileBuild(cmd.Context(), cmd, &f, &df, args[0])
			}
			if err := needDockerfile(cmd); err != nil {
				return err
			}
			return runBuild(cmd.Context(), cmd, &f)
		},
	}
	f.register(cmd)
	df.register(cmd)
	cmd.Flags().StringVarP(&f.manifest, "manifest", "m", "", "manifest.toml with runtime defaults (default: manifest.toml beside the recipe, if present)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "output NAME or NAME.cpio.gz; the manifest is NAME.manifest.json (default: plugin in the recipe's folder)")
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
	compression, chosenBy := compressionOf(f.compression, r)
	artifact, manifestPath, err := outputPaths(out, compression, chosenBy)
	if err != nil {
		return err
	}
	st, err := f.assemble(ctx, cmd, r)
	if err != nil {
		return err
	}
	warnOutputMapped(cmd, r, artifact)
	res, err := packView(ctx, &f.stackFlags, st, artifact, compression)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  sha256:%s\n", artifact, humanSize(res.Size), res.SHA256)
	return writeManifest(cmd, m, r, res, manifestPath)
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
// slightly different stack compresses only what changed.
func packView(ctx context.Context, f *stackFlags, st layers, dst, compression string) (packer.Result, error) {
	v, err := st.View()
	if err != nil {
		return packer.Result{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return packer.Result{}, fmt.Errorf("output folder for %s: %w", dst, err)
	}
	opts := packer.Options{Compression: compression}
	if cache, err := f.cache(); err == nil { // without a cache folder, packs are cold
		opts.CacheDir = filepath.Join(cache, "pieces")
	}
	return packer.WriteFile(ctx, v, dst, opts)
}

// extensions has an entry for each of recipe.Compressions
// (TestEveryCompressionHasAnExtensionAndHelp).
var extensions = map[string]string{"gzip": ".cpio.gz", "zstd": ".cpio.zst", "xz": ".cpio.xz", "lz4": ".cpio.lz4", "none": ".cpio"}

const compressionHelp = "archive compression: gzip, zstd, xz (smallest, one core), lz4 (fastest to unpack) or none (default: the recipe's output.compression, else gzip)"

// compressionOf is the compression to write: the flag's, else the
// recipe's output.compression, else gzip; chosenBy says which, so that a
// message names what the user can change.
func compressionOf(flag string, r *recipe.Recipe) (compression, chosenBy string) {
	switch {
	case flag != "":
		return flag, "--compression"
	case r.Output.Compression != "":
		return r.Output.Compression, "the recipe's output.compression"
	}
	return packer.Gzip, "the default compression"
}

// outputPaths derives the artifact and manifest paths from -o: NAME gets
// the compression's extension; NAME.cpio.gz must agree with the
// compression, which chosenBy names for messages.
func outputPaths(out, compression, chosenBy string) (artifact, manifest string, err error) {
	ext, ok := extensions[compression]
	if !ok {
		return "", "", fmt.Errorf("%s %q: use one of %s", chosenBy, compression, strings.Join(recipe.Compressions, ", "))
	}
	base := out
	for c, e := range extensions {
		if strings.HasSuffix(out, e) {
			if c != compression {
				return "", "", fmt.Errorf("-o %s names a %s archive but %s is %s; change one of them", out, c, chosenBy, compression)
			}
			base = strings.TrimSuffix(out, e)
		}
	}
	if base == "" || strings.HasSuffix(base, "/") {
		return "", "", fmt.Errorf("-o %q: expected a file name such as dist/plugin", out)
	}
	return base + ext, base + ".manifest.json", nil
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
