package recipe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkViewOfMappedTree builds the view of a none-mode recipe without
// BusyBox that maps a large host tree, the stack `fledge pack` merges
// before the packer runs (skeleton, host libraries, mappings). The tree is
// $FLEDGE_BENCH_TREE, or a copy of Go's own source tree (about 13,000
// entries):
//
//	go test -run - -bench ViewOfMappedTree ./overlay/recipe/
func BenchmarkViewOfMappedTree(b *testing.B) {
	dir := b.TempDir()
	tree := os.Getenv("FLEDGE_BENCH_TREE")
	if tree == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			b.Fatalf("go env GOROOT: %v", err)
		}
		tree = filepath.Join(dir, "tree")
		src := filepath.Join(strings.TrimSpace(string(out)), "src")
		if out, err := exec.Command("cp", "-a", src, tree).CombinedOutput(); err != nil {
			b.Fatalf("copying %s: %v: %s", src, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	text := head + "[init]\nnone = true\n[source]\nbusybox = false\n[mappings]\n\"./init\" = \"/init\"\n\"" + tree + "\" = \"/src\"\n"
	r, err := Parse(filepath.Join(dir, "fledge.toml"), []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	st, err := Assemble(context.Background(), r, nil, Options{CacheDir: b.TempDir(), Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := st.View(); err != nil {
			b.Fatal(err)
		}
	}
}
