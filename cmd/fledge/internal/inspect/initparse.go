package inspect

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// listKinds gives, per gen_init_cpio line type, its field count (without
// the optional hard links) and the stat(2) type bits of what it makes.
var listKinds = map[string]struct {
	fields int
	ifmt   uint32
}{
	"dir": {5, 0o040000}, "file": {6, 0o100000}, "slink": {6, 0o120000},
	"nod": {8, 0}, "pipe": {5, 0o010000}, "sock": {5, 0o140000},
}

// ParseInitList reads a gen_init_cpio list into entries of a layer, the
// way the kernel tool reads it: white-space separated fields, octal modes,
// "#" comments. File contents are read from their locations on the host
// when the layer is packed; their sizes are taken now, and a location that
// does not exist is an error. "${VAR}" expansion in locations is not done.
func ParseInitList(r io.Reader) ([]overlay.Entry, error) {
	var out []overlay.Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		ents, err := parseListLine(f, line)
		if err != nil {
			return nil, fmt.Errorf("gen_init_cpio list, line %d: %w", line, err)
		}
		out = append(out, ents...)
	}
	return out, sc.Err()
}

func parseListLine(f []string, line int) ([]overlay.Entry, error) {
	kind, ok := listKinds[f[0]]
	if !ok {
		return nil, fmt.Errorf("unknown type %q: expected dir, file, slink, nod, pipe or sock", f[0])
	}
	if len(f) < kind.fields || (len(f) > kind.fields && f[0] != "file") {
		return nil, fmt.Errorf("%s takes %d fields, found %d", f[0], kind.fields-1, len(f)-1)
	}
	var e overlay.Entry
	var err error
	// The mode, uid and gid follow the name, and the location or target
	// where a line has one.
	at := 2
	if f[0] == "file" || f[0] == "slink" {
		at = 3
	}
	ifmt := kind.ifmt
	if f[0] == "nod" {
		if ifmt, err = deviceType(f[5]); err != nil {
			return nil, err
		}
	}
	if e, err = listEntry(f[1], f[at:at+3], ifmt); err != nil {
		return nil, err
	}
	switch f[0] {
	case "slink":
		e.Linkname = f[2]
	case "nod":
		if e.Major, e.Minor, err = deviceNumbers(f[6], f[7]); err != nil {
			return nil, err
		}
	case "file":
		return fileEntries(e, f[2], f[6:], line)
	}
	return []overlay.Entry{e}, nil
}

func listEntry(name string, modeOwner []string, ifmt uint32) (overlay.Entry, error) {
	if name == "." {
		name = "/"
	}
	p, err := overlay.CleanPath(name)
	if err != nil {
		return overlay.Entry{}, err
	}
	mode, err := strconv.ParseUint(modeOwner[0], 8, 32)
	if err != nil || mode > 0o7777 {
		return overlay.Entry{}, fmt.Errorf("mode %q: expected octal permissions such as 0755", modeOwner[0])
	}
	t, perm, err := overlay.FromUnixMode(uint32(mode) | ifmt)
	if err != nil {
		return overlay.Entry{}, err
	}
	uid, err1 := strconv.Atoi(modeOwner[1])
	gid, err2 := strconv.Atoi(modeOwner[2])
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return overlay.Entry{}, fmt.Errorf("owner %s %s: expected numeric uid and gid", modeOwner[1], modeOwner[2])
	}
	return overlay.Entry{Path: p, Type: t, Perm: perm, UID: uid, GID: gid, Layer: "list"}, nil
}

func deviceType(s string) (uint32, error) {
	switch s {
	case "c":
		return 0o020000, nil
	case "b":
		return 0o060000, nil
	}
	return 0, fmt.Errorf("device type %q: expected c or b", s)
}

func deviceNumbers(maj, min string) (uint32, uint32, error) {
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("device numbers %s %s: expected two decimal numbers", maj, min)
	}
	return uint32(a), uint32(b), nil
}

// fileEntries makes the file and its hard links, which share the location
// and one LinkID.
func fileEntries(e overlay.Entry, loc string, links []string, line int) ([]overlay.Entry, error) {
	// gen_init_cpio follows a symlinked location; overlay.HostFile does
	// not, so it is given the file the link names.
	loc, err := filepath.EvalSymlinks(loc)
	if err != nil {
		return nil, fmt.Errorf("location: %w", err)
	}
	fi, err := os.Stat(loc)
	if err != nil {
		return nil, fmt.Errorf("location: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("location %s is a %s, expected a regular file", loc, fi.Mode().Type())
	}
	e.Size, e.Content, e.Source = fi.Size(), overlay.HostFile(loc), loc
	if len(links) > 0 {
		e.LinkID = fmt.Sprintf("line %d", line)
	}
	out := []overlay.Entry{e}
	for _, l := range links {
		p, err := overlay.CleanPath(l)
		if err != nil {
			return nil, fmt.Errorf("hard link: %w", err)
		}
		h := e
		h.Path = p
		out = append(out, h)
	}
	return out, nil
}
