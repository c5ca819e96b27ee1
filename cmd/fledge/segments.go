package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/packer"
)

// listSegments prints each archive or compressed stream of an artifact,
// in the order the kernel unpacks them.
func listSegments(out io.Writer, args []string, asJSON bool) error {
	if len(args) != 1 {
		return fmt.Errorf("--segments lists the archives of one artifact: fledge ls --segments ARTIFACT")
	}
	segs, err := packer.Segments(args[0])
	if err != nil {
		return err
	}
	if asJSON {
		return inspect.WriteJSON(out, segs)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OFFSET\tCOMPRESSION\tCOMPRESSED\tBYTES\tENTRIES\t")
	for _, s := range segs {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t\n", s.Offset, s.Compression, s.CompressedBytes, s.Bytes, s.Entries)
	}
	return tw.Flush()
}
