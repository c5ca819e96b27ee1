package packer

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// entries turns archive members into layer entries. A later member wins a
// path, as when the kernel unpacks one archive after the other.
func entries(ms []member, stream io.ReaderAt, source string) ([]overlay.Entry, error) {
	all := make([]overlay.Entry, 0, len(ms))
	for _, m := range ms {
		e, err := entry(m, stream)
		if err != nil {
			return nil, fmt.Errorf("entry %q (archive %d): %w", m.Name, m.archive+1, err)
		}
		e.Layer, e.Source = "artifact", source
		all = append(all, e)
	}
	// Before a later member replaces a path: the data of a link group may
	// sit with the replaced member.
	shareLinkData(all)
	out := all[:0]
	at := map[string]int{}
	for _, e := range all {
		if i, ok := at[e.Path]; ok {
			out[i] = e
			continue
		}
		at[e.Path] = len(out)
		out = append(out, e)
	}
	return out, nil
}

func entry(m member, stream io.ReaderAt) (overlay.Entry, error) {
	p, err := overlay.CleanPath(m.Name)
	if err != nil {
		return overlay.Entry{}, err
	}
	t, perm, err := overlay.FromUnixMode(m.Mode)
	if err != nil {
		return overlay.Entry{}, err
	}
	e := overlay.Entry{
		Path: p, Type: t, Perm: perm, UID: m.UID, GID: m.GID,
		MTime: time.Unix(m.MTime, 0).UTC(),
	}
	switch t {
	case overlay.Regular:
		e.Size = m.Size
		e.Content = overlay.Section{R: stream, Off: m.off, N: m.Size}
		if m.NLink > 1 {
			// Inode numbers are only unique per packing device and archive.
			e.LinkID = fmt.Sprintf("%d:%d:%d:%d", m.archive, m.DevMajor, m.DevMinor, m.Ino)
		}
	case overlay.Symlink:
		if m.Size == 0 || m.Size >= maxNameSize {
			return e, fmt.Errorf("symlink target of %d bytes: expected 1 to %d", m.Size, maxNameSize-1)
		}
		target := make([]byte, m.Size)
		if _, err := stream.ReadAt(target, m.off); err != nil {
			return e, fmt.Errorf("reading symlink target: %w", err)
		}
		// The kernel's gen_init_cpio stores the target with its NUL, and
		// the kernel reads it as a C string: so do we.
		if i := bytes.IndexByte(target, 0); i >= 0 {
			target = target[:i]
		}
		if len(target) == 0 {
			return e, fmt.Errorf("symlink with an empty target")
		}
		e.Linkname = string(target)
	case overlay.CharDev, overlay.BlockDev:
		e.Major, e.Minor = m.RDevMajor, m.RDevMinor
	}
	return e, nil
}

// shareLinkData gives every member of a hard-link group the group's data.
// Archivers store it once (GNU cpio with the last member, others with the
// first), the other members having size 0.
func shareLinkData(ents []overlay.Entry) {
	data := map[string]*overlay.Entry{}
	for i := range ents {
		if e := &ents[i]; e.LinkID != "" && e.Size > 0 {
			data[e.LinkID] = e
		}
	}
	for i := range ents {
		e := &ents[i]
		if d := data[e.LinkID]; e.LinkID != "" && d != nil {
			e.Size, e.Content = d.Size, d.Content
		}
	}
}
