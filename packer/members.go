package packer

import (
	"io"
	"io/fs"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// entries turns archive members into layer entries: what the kernel
// leaves when it unpacks them one after the other (see unpack).
func entries(ms []member, stream io.ReaderAt, layer, source string) ([]overlay.Entry, error) {
	all, err := unpack(ms, stream)
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i].Layer, all[i].Source = layer, source
	}
	return all, nil
}

// entry converts a member of type t and permissions perm, any type but
// symlink (see rootfs.symlink). Its path and link group are left to
// rootfs.entries, which knows the names the member ends up with.
func entry(m member, t overlay.Type, perm fs.FileMode, stream io.ReaderAt) overlay.Entry {
	e := overlay.Entry{
		Type: t, Perm: perm, UID: m.UID, GID: m.GID,
		MTime: time.Unix(m.MTime, 0).UTC(),
	}
	switch t {
	case overlay.Regular:
		e.Size = m.Size
		e.Content = overlay.Section{R: stream, Off: m.off, N: m.Size}
	case overlay.CharDev, overlay.BlockDev:
		e.Major, e.Minor = m.RDevMajor, m.RDevMinor
	}
	return e
}
