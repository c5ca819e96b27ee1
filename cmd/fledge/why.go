package main

import (
	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

func newWhyCmd() *cobra.Command {
	var (
		f      stackFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "why [RECIPE|ARTIFACT] PATH",
		Short: "Explain which layer provides a path, from which source, and what it hides",
		Long: `why tells where PATH in the image comes from: the layer that provides it and
the source in that layer (the host file of a mapping, a library or a kernel
module, the URL or cache file of a download), for a library the programs
that needed it (for a kernel module, the modules that did), what it shadows
in the layers below, the symlinked folders it is reached through (/bin ->
usr/bin), what a symlink resolves to, or, for a path that is gone, the
whiteout that removed it. It exits 1 when PATH is not in the image. A
relative PATH is taken from the image's root (bin/sh is /bin/sh); the
recipe may be named by its folder.`,
		Example: `  fledge why /bin/sh
  fledge why dist/app.cpio.gz /etc/passwd
  fledge why /usr/bin/myapp --json
  fledge why app/ etc/passwd         # app/fledge.toml's /etc/passwd`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, v, at, err := openAt(cmd, &f, args)
			if err != nil {
				return err
			}
			defer t.Close()
			x := inspect.Why(v, at)
			if asJSON {
				err = inspect.WriteJSON(cmd.OutOrStdout(), x)
			} else {
				err = inspect.WriteExplanation(cmd.OutOrStdout(), x)
			}
			if err == nil && !x.Found {
				return &exitError{code: 1}
			}
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the explanation as a JSON object")
	return cmd
}
