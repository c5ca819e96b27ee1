// Command roundtrip times the cheapest request a fledge mount answers
// itself: getxattr of user.fledge.layer, which the kernel never caches, on
// a mount made with --xattrs. bench/roundtrip.sh runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 50000, "requests to make")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: roundtrip [-n N] FILE")
		os.Exit(2)
	}
	buf := make([]byte, 4096)
	start := time.Now()
	for range *n {
		if _, err := unix.Getxattr(flag.Arg(0), "user.fledge.layer", buf); err != nil {
			fmt.Fprintln(os.Stderr, "roundtrip:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("%.1f\n", float64(time.Since(start).Nanoseconds())/float64(*n)/1e3)
}
