package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
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
// uid:gid, size (or major, minor for devices), mtime, path, link target,
// layer and, where the layer records one, the source. now decides how
// mtimes print (see cpioTime).
func WriteLong(w io.Writer, rows []Row, now time.Time) error {
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
		when := cpioTime(time.Unix(r.MTimeSec, 0), now)
		if _, err := fmt.Fprintf(w, "%s %-*s %*s %s %s%s  [%s]\n", r.Mode, ow, owners[i], sw, sizes[i], when, Escape(r.Path), arrow(r), prov); err != nil {
			return err
		}
	}
	return nil
}

// cpioTime renders t in local time the way GNU cpio -tv (and ls -l) does:
// "Jan  2 15:04", or "Jan  2  2006" when t is more than six months (cpio
// counts 30-day months) before now or after it.
func cpioTime(t, now time.Time) string {
	t = t.Local()
	if age := now.Sub(t); age < 0 || age > 6*30*24*time.Hour {
		return t.Format("Jan _2  2006")
	}
	return t.Format("Jan _2 15:04")
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
