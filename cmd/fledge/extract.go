package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

func newExtractCmd() *cobra.Command {
	var f stackFlags
	cmd := &cobra.Command{
		Use:   "extract [RECIPE|ARTIFACT] DIR [PATH...]",
		Short: "Write the image, or some of its paths, into a folder",
		Long: `extract writes the merged image of a recipe (-c, default ./fledge.toml) or of
an artifact into DIR, like cpio -idm or lsinitcpio -x: the whole image, or
each PATH with what lies below it (and the folders that lead to it). Contents,
modes (setuid, setgid and sticky included), mtimes, symlinks and hard links
are kept. It needs no root: run as root, it also keeps the owners and makes
the device nodes; otherwise the files are yours and device nodes are skipped
with one warning line. DIR is made when missing and otherwise left as it is;
what is in the way at an image path inside DIR is replaced (a folder that is
not empty in the way of a file is an error).

Nothing is ever written outside DIR: paths are resolved below DIR without
following any symlink, neither one the image puts there nor one that was
there before, so an absolute or ../ link in the image stays a link.

The first argument is the recipe or artifact when its content says so (a
recipe has a version = or strategy = line; a folder holding fledge.toml is
its recipe); otherwise it is DIR and the image is ./fledge.toml's.`,
		Example: `  fledge extract /tmp/root                       # ./fledge.toml's image
  fledge extract dist/app.cpio.gz /tmp/app
  fledge extract /boot/initrd.img /tmp/mods /usr/lib/modules /etc/modprobe.d
  sudo fledge extract app.cpio.gz /srv/root      # owners and device nodes too`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg, dir, paths, err := extractArgs(args)
			if err != nil {
				return err
			}
			t, v, err := openView(cmd.Context(), cmd, &f, arg)
			if err != nil {
				return err
			}
			defer t.Close()
			res, err := inspect.Unpack(v, dir, paths, inspect.UnpackOptions{Privileged: os.Geteuid() == 0})
			if err != nil {
				return err
			}
			if n := len(res.SkippedDevices); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "fledge: skipped %d device node(s) (%s): making them needs root; 'fledge ls -l' shows them\n", n, skippedList(res.SkippedDevices))
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// extractArgs splits the arguments of extract: an optional recipe or
// artifact, DIR, then paths in the image.
func extractArgs(args []string) (target, dir string, paths []string, err error) {
	if isTargetArg(args[0]) {
		if len(args) == 1 {
			return "", "", nil, fmt.Errorf("%s is a recipe or artifact; also name the folder to extract into: fledge extract %s DIR", args[0], args[0])
		}
		target, args = args[0], args[1:]
	}
	for _, p := range args[1:] {
		paths = append(paths, imagePath(p))
	}
	return target, args[0], paths, nil
}

// skippedList names the first few skipped paths, escaped for the terminal.
func skippedList(paths []string) string {
	const shown = 3
	names := make([]string, 0, shown)
	for _, p := range paths[:min(len(paths), shown)] {
		names = append(names, inspect.Escape(p))
	}
	if len(paths) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names, ", "), len(paths)-shown)
}
