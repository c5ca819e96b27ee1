package packer

import (
	"fmt"
	"io"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// entries turns archive members into layer entries: what the kernel
// leaves when it unpacks them one after the other (see unpack).
func entries(ms []member, stream io.ReaderAt, source string) ([]overlay.Entry, error) {
	all, err := unpack(ms, stream)
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i].Layer, all[i].Source = "artifact", source
	}
	return all, nil
}

// entry converts a member of any type but symlink (see rootfs.symlink).
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
	case overlay.CharDev, overlay.BlockDev:
		e.Major, e.Minor = m.RDevMajor, m.RDevMinor
	}
	return e, nil
}
