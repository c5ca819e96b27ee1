package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/overlay"
)

func newLsCmd() *cobra.Command {
	var (
		f         stackFlags
		long      bool
		asJSON    bool
		format    string
		extractTo string
		segments  bool
	)
	cmd := &cobra.Command{
		Use:   "ls [RECIPE|ARTIFACT] [PATH...]",
		Short: "List the image's tree, with owners, sizes and the layer each entry comes from",
		Long: `ls prints the merged image below each PATH (default /), one entry a line,
parents first. It reads a recipe (-c, default ./fledge.toml, or a recipe file
or a folder holding fledge.toml as the first argument) or an existing artifact
(a newc archive, plain or compressed with gzip, bzip2, lzma, xz, lzo, lz4 or
zstd, including the kernel's concatenated form), without extracting anything.
The first argument is the recipe or artifact when its content says so (a
recipe has a version = or strategy = line); any other argument is a path in
the image, a relative one taken from the root as cpio names it (etc/passwd is
/etc/passwd).

  -l          adds the mode, uid:gid, size (or device numbers), mtime (as
              cpio -tv prints it: local time, the year instead of the time for
              dates over six months old), link target and provenance: the
              layer, and the source of host files (mappings, libraries,
              kernel modules, a base initramfs) and downloads.
  --json      prints one JSON array of objects (path, type, mode, perm, uid,
              gid, size, mtime (RFC 3339, UTC), mtime_unix (seconds since
              1970), link_target, major, minor, layer, source, shadowed).
  --format gen_init_cpio
              prints the list format of the Linux kernel's usr/gen_init_cpio.
              File lines need a host path to read from: host files (mappings,
              a custom init) are named where they are; other contents (archive
              members, the compiled init, downloads held in memory) need
              --extract-to DIR, which writes each once, named by its sha256.
              Names with white space cannot be expressed in that format.
  --segments  lists the archives of an ARTIFACT as the kernel meets them: an
              early uncompressed archive, then compressed streams, each with
              its offset in the file, compression (none, gzip, bzip2, lzma,
              xz, lzo, lz4, zstd), compressed and uncompressed bytes, and
              entries. With --json: an array of objects with keys offset,
              compression, compressed_bytes, bytes, entries.`,
		Example: `  fledge ls
  fledge ls -l /usr/bin /etc/passwd
  fledge ls app/ etc               # app/fledge.toml's /etc
  fledge ls dist/app.cpio.gz /etc --json
  fledge ls --format gen_init_cpio --extract-to /tmp/blobs > initramfs.list
  fledge ls --segments /boot/initrd.img --json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if segments {
				return listSegments(cmd.OutOrStdout(), args, asJSON)
			}
			switch {
			case extractTo != "" && format != "gen_init_cpio":
				return fmt.Errorf("--extract-to only works with --format gen_init_cpio")
			case format == "gen_init_cpio" && (asJSON || long):
				return fmt.Errorf("--format gen_init_cpio prints the kernel's list format; leave out --json and -l")
			}
			arg, paths := splitTarget(args)
			switch {
			case len(paths) == 0:
				paths = []string{"/"}
			case len(paths) > 1 && format == "gen_init_cpio":
				return fmt.Errorf("--format gen_init_cpio lists one PATH, got %d; run it once per path", len(paths))
			}
			t, v, err := openView(cmd.Context(), cmd, &f, arg)
			if err != nil {
				return err
			}
			defer t.Close()
			out := cmd.OutOrStdout()
			switch {
			case format == "gen_init_cpio":
				locate := inspect.HostLocation
				if extractTo != "" {
					locate = inspect.Extractor{Dir: extractTo}.Locate
				}
				return inspect.WriteInitList(out, v, paths[0], locate)
			case format != "tree":
				return fmt.Errorf("--format %q: expected tree or gen_init_cpio", format)
			}
			var rows []inspect.Row
			for _, p := range paths {
				more, err := inspect.List(v, p)
				if err != nil {
					return err
				}
				rows = append(rows, more...)
			}
			switch {
			case asJSON:
				return inspect.WriteJSON(out, rows)
			case long:
				return inspect.WriteLong(out, rows, time.Now())
			}
			return inspect.WritePaths(out, rows)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.BoolVarP(&long, "long", "l", false, "show mode, owner, size, link target and provenance")
	fl.BoolVar(&asJSON, "json", false, "print a JSON array, for scripts")
	fl.StringVar(&format, "format", "tree", "output format: tree or gen_init_cpio")
	fl.BoolVar(&segments, "segments", false, "list the archives of an ARTIFACT: offset, compression, sizes, entries")
	fl.StringVar(&extractTo, "extract-to", "", "with --format gen_init_cpio: write contents that have no host file into DIR")
	return cmd
}

// splitTarget takes the recipe or artifact off the front of args when the
// first argument names one (see isTargetArg); the rest are paths in the
// image, relative ones taken from the root as cpio and lsinitrd name them.
func splitTarget(args []string) (target string, paths []string) {
	if len(args) > 0 && isTargetArg(args[0]) {
		target, args = args[0], args[1:]
	}
	for _, a := range args {
		paths = append(paths, imagePath(a))
	}
	return target, paths
}

// targetAndPath splits the arguments of why and cat: an optional recipe or
// artifact, then one path in the image.
func targetAndPath(args []string) (target, at string, err error) {
	if len(args) == 2 {
		return args[0], imagePath(args[1]), nil
	}
	if isTargetArg(args[0]) {
		return "", "", fmt.Errorf("%s is a recipe or artifact; also name the path in the image after it", args[0])
	}
	return "", imagePath(args[0]), nil
}

// imagePath is an argument as a clean, absolute path in the image.
func imagePath(p string) string { return path.Clean("/" + p) }

// openAt opens the target of why or cat and returns the path asked about.
func openAt(cmd *cobra.Command, f *stackFlags, args []string) (*target, *overlay.View, string, error) {
	arg, at, err := targetAndPath(args)
	if err != nil {
		return nil, nil, "", err
	}
	t, v, err := openView(cmd.Context(), cmd, f, arg)
	return t, v, at, err
}

// openView opens the target and merges its stack; the caller closes the
// target when done with the view's contents.
func openView(ctx context.Context, cmd *cobra.Command, f *stackFlags, arg string) (*target, *overlay.View, error) {
	t, err := f.open(ctx, cmd, arg)
	if err != nil {
		return nil, nil, err
	}
	v, err := t.Stack.View()
	if err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	return t, v, nil
}

// hostDirs are the host folders of a recipe that an image's symlinks must
// not point into.
func hostDirs(t *target) []string {
	if t.Recipe == nil {
		return nil
	}
	if abs, err := filepath.Abs(t.Recipe.Dir); err == nil {
		return []string{abs}
	}
	return []string{t.Recipe.Dir}
}
