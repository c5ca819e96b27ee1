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
from a Dockerfile (or an existing initramfs as the base), BusyBox, the init,
the Kestrel agent, the kernel modules [kernel] names and your file mappings.
A recipe (fledge.toml; 'fledge init' writes one) describes them; every
command reads the same merged view, of a recipe or of an existing artifact.
'fledge mount' shows it as a live, editable tree (as root or as an ordinary
user); 'fledge pack ARTIFACT -o NEW' writes an edited artifact back with its
layout kept, and 'fledge boot -m' boots a plugin as Volant does.`,
		Example: `  fledge init ./myapp               # fledge.toml + manifest.toml: ./myapp runs as /usr/bin/myapp
  fledge build                      # ./fledge.toml -> plugin.cpio.gz + plugin.manifest.json
  fledge build -c app/fledge.toml -o dist/app
  fledge pack -o /tmp/test.cpio.gz  # the image only, no manifest
  fledge mount /mnt/img             # browse and edit; 'fledge umount /mnt/img' ends it
  fledge mount initrd.img /mnt/i    # an existing initrd, edits kept apart
  fledge pack initrd.img -o new.img # the edited initrd, same layout
  fledge check dist/app.cpio.gz     # lint an artifact
  fledge boot dist/app.cpio.gz -m dist/app.manifest.json --kernel vmlinuz`,
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
