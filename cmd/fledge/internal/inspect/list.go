// Package inspect answers questions about a merged view: what is in it
// (listings), why a path is there (provenance), and what is wrong with it
// (lint rules). Everything here is a pure function of an *overlay.View, so
// recipes and artifacts are inspected by the same code.
package inspect

import (
	"fmt"
	"path"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// Row is one entry of a listing. The JSON names are part of fledge's
// interface for scripts: add fields, never rename them.
type Row struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Mode     string `json:"mode"` // ls style, "drwxr-xr-x"
	Perm     string `json:"perm"` // octal, "0755"
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Size     int64  `json:"size"`
	MTime    string `json:"mtime"`      // RFC 3339, UTC
	MTimeSec int64  `json:"mtime_unix"` // seconds since 1970, as newc stores it
	Link     string `json:"link_target,omitempty"`
	Major    uint32 `json:"major,omitempty"`
	Minor    uint32 `json:"minor,omitempty"`
	Layer    string `json:"layer"`
	Source   string `json:"source,omitempty"`
	Shadowed int    `json:"shadowed,omitempty"` // entries of lower layers this one hides
}

func rowOf(v *overlay.View, n *overlay.Node) Row {
	mtime := v.MTime(n).UTC()
	r := Row{
		MTime: mtime.Format(time.RFC3339), MTimeSec: mtime.Unix(),
		Path: n.Path, Type: n.Type.String(), Mode: ModeString(&n.Entry),
		Perm: fmt.Sprintf("%04o", OctalMode(&n.Entry)), UID: n.UID, GID: n.GID,
		Link: n.Linkname, Layer: n.Layer, Source: n.Source, Shadowed: len(n.Shadowed),
	}
	switch n.Type {
	case overlay.Regular:
		r.Size = n.Size
	case overlay.Symlink:
		r.Size = int64(len(n.Linkname))
	case overlay.CharDev, overlay.BlockDev:
		r.Major, r.Minor = n.Major, n.Minor
	}
	return r
}

// Subtree returns the nodes at and below p in packing order (parents
// first, siblings by name). A symlink to a directory is listed as the
// directory it points to, as ls does with a named argument.
func Subtree(v *overlay.View, p string) ([]*overlay.Node, error) {
	clean := path.Clean("/" + p)
	n, ok := v.Get(clean)
	if !ok {
		return nil, fmt.Errorf("%s: not in the image (try 'fledge why %s' to see whether something removed it)", clean, clean)
	}
	if n.Type == overlay.Symlink {
		if t, ok := v.Resolve(clean); ok && t.Type == overlay.Dir {
			n = t
		}
	}
	var out []*overlay.Node
	var walk func(*overlay.Node)
	walk = func(n *overlay.Node) {
		out = append(out, n)
		if n.Type == overlay.Dir {
			for _, k := range v.Children(n) {
				walk(k)
			}
		}
	}
	walk(n)
	return out, nil
}

// List returns the rows of the subtree at p.
func List(v *overlay.View, p string) ([]Row, error) {
	nodes, err := Subtree(v, p)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(nodes))
	for i, n := range nodes {
		rows[i] = rowOf(v, n)
	}
	return rows, nil
}
