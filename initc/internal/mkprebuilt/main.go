// Command mkprebuilt writes the init fledge carries prebuilt, and its
// stamp, into the folder it is given: `go generate ./initc` runs it to
// remake initc/prebuilt from initc/init.c. It needs musl-gcc (apt-get
// install musl-tools) on an x86_64 host.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/volantvm/fledge/initc"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkprebuilt DIR   (writes DIR/"+initc.PrebuiltName+" and DIR/"+initc.StampName+")")
		os.Exit(2)
	}
	if err := initc.Generate(context.Background(), os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkprebuilt:", err)
		os.Exit(1)
	}
}
