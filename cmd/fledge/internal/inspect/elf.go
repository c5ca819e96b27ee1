package inspect

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// elfInfo is what the rules need from an ELF file.
type elfInfo struct {
	Machine elf.Machine
	Class   elf.Class
	Type    elf.Type
	Interp  string   // PT_INTERP, "" for a static binary
	Needed  []string // DT_NEEDED
	RunPath []string // DT_RUNPATH, or DT_RPATH when there is none
}

func (e *elfInfo) arch() string { return fmt.Sprintf("%s/%s", e.Machine, e.Class) }

// head returns up to n bytes from the start of a regular file.
func head(n *overlay.Node, size int) ([]byte, error) {
	if n.Content == nil {
		return nil, nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	defer r.Close()
	b := make([]byte, size)
	k, err := r.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	return b[:k], nil
}

// elfOf parses n when it is an ELF file and returns nil when it is not.
// Only headers, program headers and the dynamic section are read, through
// the content's ReaderAt: nothing is extracted.
func (c *checker) elfOf(n *overlay.Node) (*elfInfo, error) {
	if info, ok := c.elfCache[n]; ok {
		return info, nil
	}
	info, err := readELF(n)
	if err != nil {
		return nil, err
	}
	c.elfCache[n] = info
	return info, nil
}

func readELF(n *overlay.Node) (*elfInfo, error) {
	if n.Type != overlay.Regular || n.Content == nil {
		return nil, nil
	}
	r, err := n.Content.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Path, err)
	}
	defer r.Close()
	magic := make([]byte, 4)
	if _, err := r.ReadAt(magic, 0); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return nil, nil
	}
	f, err := elf.NewFile(r)
	if err != nil {
		// A file that starts like ELF but does not parse cannot run
		// either; the rules report it as having no usable headers.
		return &elfInfo{Machine: elf.EM_NONE}, nil
	}
	info := &elfInfo{Machine: f.Machine, Class: f.Class, Type: f.Type}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("%s: PT_INTERP: %w", n.Path, err)
			}
			info.Interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	// Static binaries have no dynamic section; DynString then fails,
	// which means "nothing needed".
	info.Needed, _ = f.DynString(elf.DT_NEEDED)
	info.RunPath = dynPaths(f, elf.DT_RUNPATH)
	if len(info.RunPath) == 0 {
		info.RunPath = dynPaths(f, elf.DT_RPATH)
	}
	return info, nil
}

func dynPaths(f *elf.File, tag elf.DynTag) []string {
	vals, _ := f.DynString(tag)
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ":")...)
	}
	return out
}
