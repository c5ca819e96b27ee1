package inspect

import (
	"fmt"
	"io"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// The kernel's usr/gen_init_cpio reads a list of lines such as
//
//	dir <name> <mode> <uid> <gid>
//	file <name> <location> <mode> <uid> <gid> [<hard links>]
//	slink <name> <target> <mode> <uid> <gid>
//	nod <name> <mode> <uid> <gid> <dev_type> <maj> <min>
//	pipe <name> <mode> <uid> <gid>
//	sock <name> <mode> <uid> <gid>
//
// with modes in octal and fields split on white space. The tool has no
// quoting, so a name or target holding white space cannot be listed.

// Locator returns the host path gen_init_cpio should read a regular file's
// data from.
type Locator func(n *overlay.Node) (string, error)

// WriteInitList prints the subtree at p in gen_init_cpio's list format,
// parents first. Hard links of one layer are written as one file line
// naming the other links. The root itself is written as "dir ." (the name
// fledge's packer gives it), which the kernel applies to the root.
func WriteInitList(w io.Writer, v *overlay.View, p string, locate Locator) error {
	nodes, err := Subtree(v, p)
	if err != nil {
		return err
	}
	// The list is built whole first: a half list that gen_init_cpio
	// would happily pack is worse than none.
	var b strings.Builder
	links := linkGroups(nodes)
	for _, n := range nodes {
		line, err := initLine(n, links, locate)
		if err != nil {
			return fmt.Errorf("gen_init_cpio list: %s: %w", n.Path, err)
		}
		if line != "" {
			b.WriteString(line + "\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

type linkKey struct{ layer, id string }

// linkGroups maps the first member of every hard-link group to the paths
// of the others, and marks the others with nil.
func linkGroups(nodes []*overlay.Node) map[*overlay.Node][]string {
	first := map[linkKey]*overlay.Node{}
	out := map[*overlay.Node][]string{}
	for _, n := range nodes {
		if n.Type != overlay.Regular || n.LinkID == "" {
			continue
		}
		k := linkKey{n.Layer, n.LinkID}
		if f, ok := first[k]; ok {
			out[f] = append(out[f], n.Path)
			out[n] = nil
			continue
		}
		first[k] = n
		out[n] = []string{}
	}
	return out
}

func initLine(n *overlay.Node, links map[*overlay.Node][]string, locate Locator) (string, error) {
	name := n.Path
	if name == "/" {
		name = "."
	}
	if err := listable("name", name); err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%04o %d %d", OctalMode(&n.Entry), n.UID, n.GID)
	switch n.Type {
	case overlay.Dir:
		return "dir " + name + " " + owner, nil
	case overlay.Symlink:
		if err := listable("link target", n.Linkname); err != nil {
			return "", err
		}
		return "slink " + name + " " + n.Linkname + " " + owner, nil
	case overlay.CharDev, overlay.BlockDev:
		kind := "c"
		if n.Type == overlay.BlockDev {
			kind = "b"
		}
		return fmt.Sprintf("nod %s %s %s %d %d", name, owner, kind, n.Major, n.Minor), nil
	case overlay.FIFO:
		return "pipe " + name + " " + owner, nil
	case overlay.Socket:
		return "sock " + name + " " + owner, nil
	case overlay.Regular:
		return fileLine(n, name, owner, links, locate)
	}
	return "", fmt.Errorf("a %s has no gen_init_cpio form", n.Type)
}

func fileLine(n *overlay.Node, name, owner string, links map[*overlay.Node][]string, locate Locator) (string, error) {
	others, grouped := links[n]
	if grouped && others == nil {
		return "", nil // listed with the first link of its group
	}
	loc, err := locate(n)
	if err != nil {
		return "", err
	}
	if err := listable("location", loc); err != nil {
		return "", err
	}
	line := "file " + name + " " + loc + " " + owner
	for _, o := range others {
		if err := listable("hard link", o); err != nil {
			return "", err
		}
		line += " " + o
	}
	return line, nil
}

// listable refuses what gen_init_cpio would split or misread: white space
// separates fields, and "${" starts a variable expansion in locations.
func listable(what, s string) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%s %q is empty or holds white space or control characters, which the gen_init_cpio list format cannot express; use 'fledge pack' for this image", what, s)
	}
	if strings.Contains(s, "${") {
		return fmt.Errorf("%s %q holds \"${\", which gen_init_cpio expands as a variable; use 'fledge pack' for this image", what, s)
	}
	return nil
}
