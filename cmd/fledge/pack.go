package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPackCmd() *cobra.Command {
	var (
		f           stackFlags
		output      string
		compression string
		manifest    bool
	)
	cmd := &cobra.Command{
		Use:   "pack -o FILE",
		Short: "Write the recipe's merged view as an initramfs, on demand",
		Long: `pack writes the same merged view that build and mount use, including edits made
through 'fledge mount', to one archive. It writes no manifest unless --manifest
is given. The archive is written to a temporary file and renamed into place, so
an interrupted pack never leaves a truncated artifact. A pack keeps its
compressed pieces in the cache (pieces/ below --cache-dir), so the next pack
compresses only what changed, with the same bytes as a cold pack (gzip, zstd,
xz and lz4; none has nothing to save). A cache that cannot be written is
named in a warning, and the pack goes on without storing pieces.`,
		Example: `  fledge pack -o /tmp/initrd.cpio.gz
  fledge pack -c app/fledge.toml -o app.cpio --compression none
  fledge pack -o out/app.cpio.zst --manifest
  fledge pack -o /tmp/fast --compression lz4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return fmt.Errorf("pack needs -o FILE (for example -o initrd.cpio.gz)")
			}
			r, st, err := f.load(cmd.Context(), cmd)
			if err != nil {
				return err
			}
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
	cmd.Flags().StringVarP(&output, "output", "o", "", "archive to write; its extension chooses the compression (.cpio.gz, .cpio.zst, .cpio.xz, .cpio.lz4, .cpio), and NAME without one gets the compression's")
	cmd.Flags().StringVar(&compression, "compression", "", compressionHelp)
	cmd.Flags().BoolVar(&manifest, "manifest", false, "also write NAME.manifest.json (from manifest.toml beside the recipe, if any)")
	return cmd
}
