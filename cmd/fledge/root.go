package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fledge",
		Short: "Author minimal, fast-booting initramfs images for Volant plugins",
		Long: `fledge builds an initramfs from layers: an FHS skeleton, an optional rootfs
from a Dockerfile, BusyBox, the init, the Kestrel agent and your file mappings.
A recipe (fledge.toml) describes them; every command reads the same merged view.`,
		Example: `  fledge build                      # ./fledge.toml -> plugin.cpio.gz + plugin.manifest.json
  fledge build -c app/fledge.toml -o dist/app
  fledge pack -o /tmp/test.cpio.gz  # the image only, no manifest`,
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w; '%s --help' lists the flags", err, cmd.CommandPath())
	})
	root.AddCommand(
		newInitCmd(),
		newBuildCmd(),
		newPackCmd(),
		newVersionCmd(),
		newMountCmd(),
		newUmountCmd(),
		newDiffCmd(),
		newResetCmd(),
		newMknodCmd(),
		newLsCmd(),
		newWhyCmd(),
		newCatCmd(),
		newExtractCmd(),
		newCheckCmd(),
		newBootCmd(),
	)
	nameArity(root)
	return root
}
