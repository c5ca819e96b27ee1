package inspect

import (
	"fmt"
	"io"
	"strings"
)

// WriteExplanation prints x for people, one fact a line, names escaped
// (see Escape).
func WriteExplanation(w io.Writer, x Explanation) error {
	var b strings.Builder
	fmt.Fprintln(&b, Escape(x.Path))
	for _, h := range x.Via {
		fmt.Fprintf(&b, "  reached through %s -> %s (symlink from layer %s)\n", Escape(h.Link), Escape(h.Target), h.Layer)
	}
	if x.Resolved != "" {
		fmt.Fprintf(&b, "  stored at %s\n", Escape(x.Resolved))
	}
	switch {
	case x.Found:
		fmt.Fprintf(&b, "  provided by layer %s: %s\n", x.Provider.Layer, describe(*x.Provider))
		if len(x.Provider.NeededBy) > 0 {
			needers := make([]string, len(x.Provider.NeededBy))
			for i, p := range x.Provider.NeededBy {
				needers[i] = Escape(p)
			}
			fmt.Fprintf(&b, "  needed by %s\n", strings.Join(needers, ", "))
		}
		if x.Target != nil {
			fmt.Fprintf(&b, "  resolves to %s: %s from layer %s\n", Escape(x.Target.Path), x.Target.Type, x.Target.Layer)
		} else if x.Provider.Type == "symlink" {
			fmt.Fprintln(&b, "  dangles: its target is not in the image")
		}
		if len(x.Shadows) == 0 {
			fmt.Fprintln(&b, "  shadows nothing in the layers below")
		}
		for _, s := range x.Shadows {
			fmt.Fprintf(&b, "  shadows layer %s: %s\n", s.Layer, describe(s))
		}
	case x.RemovedBy != nil:
		fmt.Fprintf(&b, "  not in the image: removed by a whiteout at %s in layer %s", Escape(x.RemovedBy.Path), x.RemovedBy.Layer)
		if x.RemovedBy.Source != "" {
			fmt.Fprintf(&b, " (%s)", Escape(x.RemovedBy.Source))
		}
		fmt.Fprintln(&b)
	default:
		fmt.Fprintln(&b, "  not in the image: no layer provides it")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func describe(p Provider) string {
	s := p.Type + " " + p.Mode
	if p.Link != "" {
		s += " -> " + Escape(p.Link)
	}
	if p.Source != "" {
		s += " from " + Escape(p.Source)
	}
	return s
}
