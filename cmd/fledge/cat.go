package main

import (
	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

func newCatCmd() *cobra.Command {
	var f stackFlags
	cmd := &cobra.Command{
		Use:   "cat [RECIPE|ARTIFACT] PATH",
		Short: "Print one file of the image to stdout",
		Long: `cat writes the content of PATH in the merged image of a recipe (-c, default
./fledge.toml) or of an artifact to stdout, byte for byte, like lsinitrd -f.
Nothing is extracted or mounted. A symlink is followed inside the image, as
the guest would follow it, never on the host; a directory, a device or a
dangling symlink is an error. A relative PATH is taken from the image's root.`,
		Example: `  fledge cat /etc/passwd
  fledge cat dist/app.cpio.gz /init | file -
  fledge cat /boot/initrd.img etc/passwd  # a relative PATH is from the root
  fledge cat app/ /bin/sh > busybox      # follows /bin/sh -> busybox`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, v, at, err := openAt(cmd, &f, args)
			if err != nil {
				return err
			}
			defer t.Close()
			return inspect.Cat(cmd.OutOrStdout(), v, at)
		},
	}
	f.register(cmd)
	return cmd
}
