package overlay

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Change is one difference at a path: one the edits make to the layers
// below them, or one between two views (Diff).
type Change struct {
	Path string `json:"path"`
	// Kind is "added", "deleted" (by the edits), "removed" (by Diff),
	// "changed" (content, type, link target or device numbers) or "mode"
	// (permissions or owner only; the edits').
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// Diff compares two views path by path: what b adds, removes ("removed")
// or changes relative to a. A change names every aspect that differs
// (type, content hash, link target, device numbers, mode, owner) in one
// line, so two artifacts, or a recipe and its artifact, compare at a
// glance.
func Diff(a, b *View) ([]Change, error) {
	na, nb := byPath(a), byPath(b)
	var out []Change
	for p, x := range na {
		y, ok := nb[p]
		if !ok {
			out = append(out, Change{Path: p, Kind: "removed", Detail: x.Type.String()})
			continue
		}
		var what []string
		if x.Type != y.Type {
			what = append(what, x.Type.String()+" -> "+y.Type.String())
		} else {
			d, err := ContentChange(&x.Entry, &y.Entry)
			if err != nil {
				return nil, err
			}
			if d != "" {
				what = append(what, d)
			}
		}
		if d := ModeChange(&x.Entry, &y.Entry); d != "" {
			what = append(what, d)
		}
		if len(what) > 0 {
			out = append(out, Change{Path: p, Kind: "changed", Detail: strings.Join(what, ", ")})
		}
	}
	for p, y := range nb {
		if _, ok := na[p]; !ok {
			out = append(out, Change{Path: p, Kind: "added", Detail: y.Type.String()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func byPath(v *View) map[string]*Node {
	m := map[string]*Node{}
	_ = v.Walk(func(n *Node) error {
		m[n.Path] = n
		return nil
	})
	return m
}

// ContentChange describes how the data of two objects of one type differ,
// or returns "" when they do not.
func ContentChange(a, b *Entry) (string, error) {
	switch a.Type {
	case Symlink:
		if a.Linkname != b.Linkname {
			return fmt.Sprintf("target %s -> %s", a.Linkname, b.Linkname), nil
		}
	case CharDev, BlockDev:
		if a.Major != b.Major || a.Minor != b.Minor {
			return fmt.Sprintf("device %d,%d -> %d,%d", a.Major, a.Minor, b.Major, b.Minor), nil
		}
	case Regular:
		ha, err := ContentHash(a.Content)
		if err != nil {
			return "", fmt.Errorf("%s: %w", a.Path, err)
		}
		hb, err := ContentHash(b.Content)
		if err != nil {
			return "", fmt.Errorf("%s: %w", b.Path, err)
		}
		if !bytes.Equal(ha, hb) {
			return fmt.Sprintf("content sha256 %x -> %x", ha[:6], hb[:6]), nil
		}
	}
	return "", nil
}

// ModeChange describes how the permissions and owners of two objects
// differ, or returns "" when they do not.
func ModeChange(a, b *Entry) string {
	var d string
	if a.UnixMode() != b.UnixMode() {
		d = fmt.Sprintf("mode %04o -> %04o", a.UnixMode()&0o7777, b.UnixMode()&0o7777)
	}
	if a.UID != b.UID || a.GID != b.GID {
		if d != "" {
			d += ", "
		}
		d += fmt.Sprintf("owner %d:%d -> %d:%d", a.UID, a.GID, b.UID, b.GID)
	}
	return d
}

// ContentHash returns the sha256 of a regular file's content (nil content
// hashes as empty).
func ContentHash(c Content) ([]byte, error) {
	h := sha256.New()
	if c != nil {
		r, err := c.Open()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		if _, err := io.Copy(h, r); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}
