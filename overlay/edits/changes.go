package edits

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"

	"github.com/volantvm/fledge/overlay"
)

// Changes lists what the layer changes relative to lower, the view of the
// layers beneath it, sorted by path. Directories that were only copied up
// to hold an edit below them are not changes.
func (e *Edits) Changes(lower *overlay.View) ([]overlay.Change, error) {
	ents, err := e.Entries()
	if err != nil {
		return nil, err
	}
	var out []overlay.Change
	for i := range ents {
		c, ok, err := change(lower, &ents[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func change(lower *overlay.View, ent *overlay.Entry) (overlay.Change, bool, error) {
	old, had := lower.Get(ent.Path)
	switch {
	case ent.Type == overlay.Whiteout:
		return overlay.Change{Path: ent.Path, Kind: "deleted"}, had, nil
	case !had:
		return overlay.Change{Path: ent.Path, Kind: "added", Detail: ent.Type.String()}, true, nil
	case old.Type != ent.Type:
		return overlay.Change{Path: ent.Path, Kind: "changed", Detail: fmt.Sprintf("%s -> %s", old.Type, ent.Type)}, true, nil
	}
	what, err := overlay.ContentChange(&old.Entry, ent)
	if err != nil || what != "" {
		return overlay.Change{Path: ent.Path, Kind: "changed", Detail: what}, what != "", err
	}
	if ent.Opaque {
		return overlay.Change{Path: ent.Path, Kind: "changed", Detail: "replaced (opaque)"}, true, nil
	}
	if d := overlay.ModeChange(&old.Entry, ent); d != "" {
		return overlay.Change{Path: ent.Path, Kind: "mode", Detail: d}, true, nil
	}
	return overlay.Change{}, false, nil
}

// Reset discards the edits at and below guest path p, or all of them when
// p is "/": p shows again what the lower layers have there. A directory
// moved away keeps the whiteout at its old place until that path is reset
// too.
func (e *Edits) Reset(p string) error {
	// Exclusive, like a pack's read: a mount in another process may be in
	// the middle of a change to the same paths.
	release, err := e.lockExclusive()
	if err != nil {
		return err
	}
	defer release()
	defer e.touched(p)
	if err := e.reset(p); err != nil {
		return err
	}
	return e.stamp()
}

func (e *Edits) reset(p string) error {
	if p == "/" {
		if err := os.RemoveAll(e.dir); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		// The next change makes the folder again, as whoever makes it.
		e.kind.Store(0)
		return nil
	}
	parts, err := e.splitGuest(p)
	if err != nil {
		return err
	}
	d, err := e.openDir(path.Dir(p))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) {
		// Nothing was edited there.
		return nil
	}
	if err != nil {
		return fmt.Errorf("reset %s: %w", p, err)
	}
	defer d.close()
	name := parts[len(parts)-1]
	if err := d.remove(name); err != nil {
		return fmt.Errorf("reset %s: %w", p, err)
	}
	if err := e.clearLegacy(d, name); err != nil {
		return fmt.Errorf("reset %s: %w", p, err)
	}
	return nil
}
