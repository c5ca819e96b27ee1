package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

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
		Use:   "ls [RECIPE|ARTIFACT] [PATH]",
		Short: "List the image's tree, with owners, sizes and the layer each entry comes from",
		Long: `ls prints the merged image below PATH (default /), one entry a line, parents
first. It reads a recipe (-c, default ./fledge.toml) or an existing artifact
(a newc archive, plain or compressed with gzip, bzip2, lzma, xz, lzo, lz4 or
zstd, including the kernel's concatenated form), without extracting anything.

  -l          adds the mode, uid:gid, size (or device numbers), link target and
              provenance: the layer, and the source for mappings and downloads.
  --json      prints one JSON array of objects (path, type, mode, perm, uid,
              gid, size, link_target, major, minor, layer, source, shadowed).
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
  fledge ls -l /usr/bin
  fledge ls dist/app.cpio.gz /etc --json
  fledge ls --format gen_init_cpio --extract-to /tmp/blobs > initramfs.list
  fledge ls --segments /boot/initrd.img --json`,
		Args: cobra.MaximumNArgs(2),
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
			t, v, at, err := openAt(cmd, &f, args, "/")
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
				return inspect.WriteInitList(out, v, at, locate)
			case format != "tree":
				return fmt.Errorf("--format %q: expected tree or gen_init_cpio", format)
			}
			rows, err := inspect.List(v, at)
			switch {
			case err != nil:
				return err
			case asJSON:
				return inspect.WriteJSON(out, rows)
			case long:
				return inspect.WriteLong(out, rows)
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

// targetAndPath splits the arguments of ls and why: an optional recipe or
// artifact, then a path in the image. A lone absolute argument is the
// target only when it names a host file that is an artifact or a .toml
// recipe, so "fledge ls /etc" lists the image's /etc, not the host's; a
// lone relative one is always the target, so a mistyped file name is
// reported as missing on the host.
func targetAndPath(args []string, def string) (target, at string, err error) {
	switch len(args) {
	case 0:
		return "", def, nil
	case 2:
		return args[0], args[1], nil
	}
	if !strings.HasPrefix(args[0], "/") || isTargetFile(args[0]) {
		if looksLikeImagePath(args[0]) {
			return "", "", fmt.Errorf("%s is neither a recipe nor an artifact on the host; paths in the image are absolute: %s", args[0], "/"+path.Clean(args[0]))
		}
		if def == "" {
			return "", "", fmt.Errorf("%s is a recipe or artifact; also name the path in the image to explain", args[0])
		}
		return args[0], def, nil
	}
	return "", args[0], nil
}

// looksLikeImagePath reports whether a relative argument is more likely a
// path in the image missing its leading slash than a recipe or artifact:
// no such host file, and not named like one.
func looksLikeImagePath(p string) bool {
	return !fileExists(p) && !strings.HasSuffix(p, ".toml") && !isArtifactArg(p)
}

func isTargetFile(p string) bool {
	if !fileExists(p) {
		return false
	}
	return strings.HasSuffix(p, ".toml") || isArtifact(p)
}

// openAt opens the target of ls or why and returns the path asked about.
func openAt(cmd *cobra.Command, f *stackFlags, args []string, def string) (*target, *overlay.View, string, error) {
	arg, at, err := targetAndPath(args, def)
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
