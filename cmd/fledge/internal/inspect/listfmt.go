package inspect

import (
	"encoding/json"
	"fmt"
	"io"
)

// WritePaths prints one path per line, symlinks with their target, names
// escaped (see Escape) so each entry is one line.
func WritePaths(w io.Writer, rows []Row) error {
	for _, r := range rows {
		if _, err := fmt.Fprintln(w, Escape(r.Path)+arrow(r)); err != nil {
			return err
		}
	}
	return nil
}

// WriteLong prints the ls -l style listing with provenance: mode,
// uid:gid, size (or major, minor for devices), path, link target, layer
// and, where the layer records one, the source.
func WriteLong(w io.Writer, rows []Row) error {
	owners, sizes := make([]string, len(rows)), make([]string, len(rows))
	ow, sw := 0, 0
	for i, r := range rows {
		owners[i] = fmt.Sprintf("%d:%d", r.UID, r.GID)
		sizes[i] = fmt.Sprint(r.Size)
		if r.Type == "chardev" || r.Type == "blockdev" {
			sizes[i] = fmt.Sprintf("%d, %d", r.Major, r.Minor)
		}
		ow, sw = max(ow, len(owners[i])), max(sw, len(sizes[i]))
	}
	for i, r := range rows {
		prov := r.Layer
		if r.Source != "" {
			prov += " (" + Escape(r.Source) + ")"
		}
		if _, err := fmt.Fprintf(w, "%s %-*s %*s %s%s  [%s]\n", r.Mode, ow, owners[i], sw, sizes[i], Escape(r.Path), arrow(r), prov); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON prints the rows as one JSON array.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func arrow(r Row) string {
	if r.Type == "symlink" {
		return " -> " + Escape(r.Link)
	}
	return ""
}
