// Command packtree packs a host directory with fledge's packer, the way
// `fledge pack` packs a recipe whose only mapping is that directory: the
// skeleton plus the directory mapped live at /src. bench/pack.sh times it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/packer"
)

func main() {
	out := flag.String("o", "fledge.cpio.gz", "artifact to write")
	compression := flag.String("compression", packer.Gzip, "gzip, zstd, xz, lz4 or none")
	cache := flag.String("cache", "", "piece cache directory (none when empty)")
	whole := flag.Bool("whole", false, "write zstd, xz and lz4 as one stream, not in pieces")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: packtree [-o FILE] [-compression C] [-cache DIR] [-whole] DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *compression, *cache, *whole); err != nil {
		fmt.Fprintln(os.Stderr, "packtree:", err)
		os.Exit(1)
	}
}

func run(dir, out, compression, cache string, whole bool) error {
	tree, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	st := overlay.Stack{Layers: []overlay.Layer{
		overlay.Skeleton(),
		overlay.Mappings("", []overlay.Mapping{{Host: tree, Guest: "/src"}}),
	}}
	v, err := st.View()
	if err != nil {
		return err
	}
	_, err = packer.WriteFile(context.Background(), v, out, packer.Options{Compression: compression, CacheDir: cache, WholeStream: whole})
	return err
}
