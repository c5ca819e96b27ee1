package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/packer"
)

func newPackCmd() *cobra.Command {
	var (
		f           stackFlags
		output      string
		compression string
		manifest    bool
		ws          string
	)
	cmd := &cobra.Command{
		Use:   "pack [ARTIFACT] -o FILE",
		Short: "Write the recipe's merged view, or an edited artifact, as an initramfs",
		Long: `pack writes the same merged view that build and mount use, including edits made
through 'fledge mount', to one archive. It writes no manifest unless --manifest
is given. The archive is written to a temporary file and renamed into place, so
an interrupted pack never leaves a truncated artifact. A pack keeps its
compressed pieces in the cache (pieces/ below --cache-dir), so the next pack
compresses only what changed, with the same bytes as a cold pack (gzip, zstd,
xz and lz4; none has nothing to save). A cache that cannot be written is
named in a warning, and the pack goes on without storing pieces.

With an ARTIFACT, pack writes it to FILE with the edits made through 'fledge
mount ARTIFACT' or 'fledge mknod ARTIFACT' (kept in its workspace, see
'fledge mount --help'), keeping its layout: every segment (early archive, compressed archive) that no edit
touches is copied byte for byte in its place; a changed segment keeps its
compression, written with the settings the kernel reads (xz with CRC32, the
legacy lz4 frame), unless --compression names another (bzip2, lzma and lzo
are read but not written: a changed one needs it); in it, the records of
untouched files are copied byte for byte (names, modes, owners, mtimes, inode
and device numbers, hard links), changed ones are replaced in place, deleted
ones left out, and new files go at the end of the last segment. No root is
needed, the output is reproducible, and with no edits it is the artifact's
copy. FILE is written as named (its extension chooses nothing); the artifact
itself is never written.`,
		Example: `  fledge pack -o /tmp/initrd.cpio.gz
  fledge pack -c app/fledge.toml -o app.cpio --compression none
  fledge pack -o out/app.cpio.zst --manifest
  fledge pack -o /tmp/fast --compression lz4
  fledge pack -o app.cpio.gz --cache-from type=local,src=/srv/buildcache  # a Dockerfile rootfs from a shared cache
  fledge pack /boot/initrd.img-6.1.0-57-amd64 -o /tmp/initrd.img   # edited artifact`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("pack needs -o FILE (for example -o initrd.cpio.gz)")
			}
			if len(args) == 1 && isArtifactArg(args[0]) {
				if manifest {
					return fmt.Errorf("--manifest needs a recipe (its manifest.toml); %s is an artifact", args[0])
				}
				return packArtifact(cmd, &f, args[0], ws, output, compression)
			}
			if len(args) == 1 {
				f.config, f.named = args[0], true
			}
			if ws != "" {
				return fmt.Errorf("--workspace %s: a recipe's workspace is always .fledge beside it; --workspace is for artifacts", ws)
			}
			r, st, err := f.load(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			o, err := outputOf(output, compression, r)
			if err != nil {
				return err
			}
			warnOutputMapped(cmd, r, o.artifact)
			res, err := packView(cmd.Context(), cmd.ErrOrStderr(), &f, st, o.artifact, o.compression)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  sha256:%s\n", o.artifact, humanSize(res.Size), res.SHA256)
			if !manifest {
				return nil
			}
			m, err := loadManifest(cmd, r, "")
			if err != nil {
				return err
			}
			return writeManifest(cmd, m, r, res, o.manifest)
		},
	}
	f.register(cmd)
	f.registerCache(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "archive to write; its extension chooses the compression (.cpio.gz, .cpio.zst, .cpio.xz, .cpio.lz4, .cpio), and NAME without one gets the compression's")
	cmd.Flags().StringVar(&compression, "compression", "", compressionHelp)
	cmd.Flags().BoolVar(&manifest, "manifest", false, "also write NAME.manifest.json (from manifest.toml beside the recipe, if any)")
	cmd.Flags().StringVar(&ws, "workspace", "", workspaceHelp)
	return cmd
}

// packArtifact writes the artifact art with the edits of its workspace
// to output, keeping its layout (packer.Repack).
func packArtifact(cmd *cobra.Command, f *stackFlags, art, ws, output, compression string) error {
	if _, ok := extensions[compression]; compression != "" && !ok {
		return fmt.Errorf("--compression %q: use one of %s", compression, strings.Join(recipe.Compressions, ", "))
	}
	if a, err := os.Stat(art); err == nil {
		if o, err := os.Stat(output); err == nil && os.SameFile(a, o) {
			return fmt.Errorf("-o %s is the artifact itself, which pack never writes; name another file", output)
		}
	}
	t, err := f.openWorkspace(cmd.Context(), cmd, art, ws)
	if err != nil {
		return err
	}
	defer t.Close()
	v, err := t.Stack.View()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
		return fmt.Errorf("output folder for %s: %w", output, err)
	}
	res, err := packer.Repack(cmd.Context(), t.art, v, output, compression)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  sha256:%s\n", output, humanSize(res.Size), res.SHA256)
	return nil
}
