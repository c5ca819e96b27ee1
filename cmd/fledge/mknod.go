package main

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/overlay"
)

func newMknodCmd() *cobra.Command {
	var (
		f           stackFlags
		ws          string
		mode, owner string
	)
	cmd := &cobra.Command{
		Use:   "mknod [RECIPE|ARTIFACT] PATH TYPE [MAJOR MINOR]",
		Short: "Add a device node or FIFO to the workspace's edits, as root or not",
		Long: `mknod adds the device node or FIFO PATH to the image, the way mknod(1) makes
one: TYPE c (or u) is a character device and b a block device, each with its
MAJOR and MINOR numbers (decimal, 0x hex or 0 octal; Linux allows majors up
to 4095 and minors up to 1048575), and p a FIFO, which takes no numbers.

The node is kept in the workspace's edits like a change made through
'fledge mount': .fledge/edits beside the recipe, or the workspace of ARTIFACT
(see 'fledge mount --help'); pack and build include it, 'fledge diff' lists
it, 'fledge reset PATH' drops it. A live mount of the workspace shows it
within a second.

This is how an ordinary user adds a device: in a rootless mount the kernel
refuses mknod(2) of a character or block device ("Operation not permitted")
to anyone without CAP_MKNOD, before it asks fledge. A workspace made by root
gets a real device node; one made by a user records the device in the
extended attribute user.fledge.stat (see docs/workspace.md), and the pack
shows the same device either way.

A relative PATH is taken from the image's root. Its folder must exist in
the image, and PATH must not: remove what is there through a mount first.
--mode gives the permissions in octal; the default is 0666 less the umask,
as mknod(1) has it (0644 under the usual umask 022). --owner gives the
numeric owner in the image, root's (0:0) by default. The node's time is
SOURCE_DATE_EPOCH (or 1970), as for the recipe's layers, so the pack stays
reproducible.`,
		Example: `  fledge mknod /dev/ttyS1 c 4 65
  fledge mknod /dev/vda b 254 0 --mode 0660 --owner 0:6
  fledge mknod /run/ctl p
  fledge mknod app/fledge.toml /dev/kmsg c 1 11 --mode 0644
  fledge mknod initrd.img /dev/console c 5 1 --mode 0600   # an artifact's workspace`,
		Args: cobra.RangeArgs(2, 5),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseMknodArgs(args)
			if err != nil {
				return err
			}
			if n.ent.Perm, err = mknodPerm(mode, cmd.Flags().Changed("mode")); err != nil {
				return err
			}
			if n.ent.UID, n.ent.GID, err = parseOwner(owner); err != nil {
				return err
			}
			t, err := f.openWorkspace(cmd.Context(), cmd, n.target, ws)
			if err != nil {
				return err
			}
			defer t.Close()
			v, err := t.Stack.View()
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name(), err)
			}
			if err := freeInImage(v, n.ent.Path); err != nil {
				return err
			}
			// The time the layers' entries get, so the pack stays reproducible.
			n.ent.MTime = t.Stack.Lower.Epoch
			if t.Artifact != "" {
				if err := recordArtifact(t); err != nil {
					return err
				}
			}
			if err := t.Stack.Edits.Add(v, n.ent); err != nil {
				return fmt.Errorf("mknod %s: %w", inspect.Escape(n.ent.Path), err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s: %s\n", inspect.Escape(n.ent.Path), nodeLine(&n.ent))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&mode, "mode", "", "permissions in octal, setuid, setgid and sticky included (default 0666 less the umask)")
	cmd.Flags().StringVar(&owner, "owner", "0:0", "numeric owner in the image, UID:GID")
	cmd.Flags().StringVar(&ws, "workspace", "", workspaceHelp)
	return cmd
}

// mknodArgs is what mknod's arguments ask for: the recipe or artifact ("" for
// -c), and the node, without its permissions and owner.
type mknodArgs struct {
	target string
	ent    overlay.Entry
}

// nodeTypes are mknod(1)'s TYPE letters.
var nodeTypes = map[string]overlay.Type{"c": overlay.CharDev, "u": overlay.CharDev, "b": overlay.BlockDev, "p": overlay.FIFO}

// Linux's device numbers (MKDEV): 12 bits of major, 20 of minor.
const (
	maxMajor = 1<<12 - 1
	maxMinor = 1<<20 - 1
)

// parseMknodArgs reads [RECIPE|ARTIFACT] PATH TYPE [MAJOR MINOR]. A device
// takes two numbers and a FIFO none, so the count of arguments tells whether
// a target comes first.
func parseMknodArgs(args []string) (mknodArgs, error) {
	var n mknodArgs
	off := len(args) % 2
	word := args[off+1]
	t, ok := nodeTypes[word]
	if !ok {
		// "PATH c 4": the count is off by one, so the TYPE is at the other place.
		if alt := 1 - off; alt+1 < len(args) {
			if t2, ok2 := nodeTypes[args[alt+1]]; ok2 {
				return n, numbersError(args[alt], args[alt+1], t2, args[alt+2:])
			}
		}
		return n, fmt.Errorf("mknod: TYPE %q: expected c (or u) for a character device, b for a block device or p for a FIFO", word)
	}
	if off == 1 {
		n.target = args[0]
	}
	p, err := overlay.CleanPath(args[off])
	if err == nil && p == "/" {
		err = fmt.Errorf("the image's root is a folder")
	}
	if err != nil {
		return n, fmt.Errorf("mknod %s: %w; give a path in the image such as /dev/ttyS1", args[off], err)
	}
	nums := args[off+2:]
	if (t == overlay.FIFO) != (len(nums) == 0) {
		return n, numbersError(args[off], word, t, nums)
	}
	n.ent = overlay.Entry{Path: p, Type: t}
	if t == overlay.FIFO {
		return n, nil
	}
	if n.ent.Major, err = devNumber("MAJOR", nums[0], maxMajor); err != nil {
		return n, err
	}
	if n.ent.Minor, err = devNumber("MINOR", nums[1], maxMinor); err != nil {
		return n, err
	}
	if t == overlay.CharDev && n.ent.Major == 0 && n.ent.Minor == 0 {
		return n, fmt.Errorf("mknod %s c 0 0: a character device 0,0 is how the edits record a deletion, and no driver has it; give the device's numbers", args[off])
	}
	return n, nil
}

// numbersError says that the TYPE word at PATH came with the wrong count of
// numbers, nums.
func numbersError(p, word string, t overlay.Type, nums []string) error {
	if t == overlay.FIFO {
		return fmt.Errorf("mknod %s p: a FIFO takes no MAJOR MINOR, found %q", p, strings.Join(nums, " "))
	}
	what := "character"
	if t == overlay.BlockDev {
		what = "block"
	}
	return fmt.Errorf("mknod %s %s: a %s device needs MAJOR and MINOR, found %q; as in 'fledge mknod /dev/ttyS1 c 4 65'", p, word, what, strings.Join(nums, " "))
}

// devNumber parses a device number as mknod(1) does: decimal, 0x hex or
// 0 octal.
func devNumber(what, s string, max uint64) (uint32, error) {
	x, err := strconv.ParseUint(s, 0, 32)
	if err != nil || x > max {
		return 0, fmt.Errorf("mknod: %s %q: expected a number from 0 to %d (decimal, 0x hex or 0 octal)", what, s, max)
	}
	return uint32(x), nil
}

// mknodPerm is the permissions --mode gives (set says it was given), or
// else 0666 less the umask, as mknod(1) makes them.
func mknodPerm(mode string, set bool) (fs.FileMode, error) {
	var m uint64
	if set {
		var err error
		if m, err = strconv.ParseUint(mode, 8, 32); err != nil || m > 0o7777 {
			return 0, fmt.Errorf("--mode %q: expected permissions in octal, 0 to 7777, such as 0660", mode)
		}
	} else {
		umask := syscall.Umask(0)
		syscall.Umask(umask)
		m = 0o666 &^ uint64(umask)
	}
	_, perm, err := overlay.FromUnixMode(syscall.S_IFCHR | uint32(m))
	return perm, err
}

// parseOwner reads --owner UID:GID.
func parseOwner(s string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(s, ":")
	ids := [2]int{}
	for i, v := range []string{u, g} {
		x, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil || x == 1<<32-1 {
			return 0, 0, fmt.Errorf("--owner %q: expected numeric UID:GID, each 0 to 4294967294, such as 0:6", s)
		}
		ids[i] = int(x)
	}
	return ids[0], ids[1], nil
}

// freeInImage fails unless p may be made in v: nothing is there, and its
// folders are folders of the image (a symlinked one is not followed, so the
// node lands where the guest would find it only through its target).
func freeInImage(v *overlay.View, p string) error {
	if n, ok := v.Get(p); ok {
		return fmt.Errorf("mknod %s: the image already has a %s there (from layer %s); delete it through 'fledge mount' first, or choose another path", inspect.Escape(p), n.Type, n.Layer)
	}
	dir := path.Dir(p)
	for a, rest := "/", dir[1:]; ; {
		n, ok := v.Get(a)
		switch {
		case !ok:
			return fmt.Errorf("mknod %s: the image has no folder %s; make it first (mkdir through 'fledge mount', or a mapping in the recipe)", inspect.Escape(p), inspect.Escape(a))
		case n.Type == overlay.Symlink:
			return fmt.Errorf("mknod %s: %s is a symlink to %s in the image; name the path through its target", inspect.Escape(p), inspect.Escape(a), inspect.Escape(n.Linkname))
		case n.Type != overlay.Dir:
			return fmt.Errorf("mknod %s: %s is a %s in the image, not a folder", inspect.Escape(p), inspect.Escape(a), n.Type)
		}
		if rest == "" {
			return nil
		}
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		a = path.Join(a, c)
	}
}

// nodeLine is the node as ls -ln shows it: mode, owner, numbers.
func nodeLine(e *overlay.Entry) string {
	s := fmt.Sprintf("%s %d:%d", inspect.ModeString(e), e.UID, e.GID)
	if e.Type == overlay.FIFO {
		return s
	}
	return fmt.Sprintf("%s %d,%d", s, e.Major, e.Minor)
}
