package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLZ4RecipeKeyBootsAndIsReproducible: a recipe that asks for lz4 in
// [output] gets NAME.cpio.lz4, which lz4 -t accepts and the kernel boots;
// one core or all give the same bytes; the flag overrides the recipe.
func TestLZ4RecipeKeyBootsAndIsReproducible(t *testing.T) {
	needTool(t, "lz4", "lz4")
	dir := copyExample(t, "default")
	recipe := filepath.Join(dir, "fledge.toml")
	text, err := os.ReadFile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recipe, append(text, "\n[output]\ncompression = \"lz4\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	mustFledge(t, dir, []string{"GOMAXPROCS=1"}, "build", "-c", recipe, "-o", filepath.Join(out, "one"))
	mustFledge(t, dir, nil, "build", "-c", recipe, "-o", filepath.Join(out, "all"))
	one, err := os.ReadFile(filepath.Join(out, "one.cpio.lz4"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := os.ReadFile(filepath.Join(out, "all.cpio.lz4"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one, all) {
		t.Errorf("GOMAXPROCS=1 wrote %d bytes, all cores %d differing", len(one), len(all))
	}
	if b, err := exec.Command("lz4", "-t", filepath.Join(out, "all.cpio.lz4")).CombinedOutput(); err != nil {
		t.Errorf("lz4 -t: %v\n%s", err, b)
	}
	mustFledge(t, dir, nil, "pack", "-c", recipe, "-o", filepath.Join(out, "flag"), "--compression", "gzip")
	if _, err := os.Stat(filepath.Join(out, "flag.cpio.gz")); err != nil {
		t.Errorf("--compression gzip did not override the recipe's lz4: %v", err)
	}
	mustFledge(t, dir, nil, "check", filepath.Join(out, "all.cpio.lz4"))
	bootImage(t, filepath.Join(out, "all.cpio.lz4"), `^example-agent: done$`)
}

// TestForeignFilesGetAFormatMessage: a random file, named like an
// artifact or not, is refused in one line naming its first bytes, never
// with a recipe's TOML error; a bzip2 artifact with any name is listed.
func TestForeignFilesGetAFormatMessage(t *testing.T) {
	needTool(t, "bzip2", "bzip2")
	dir := t.TempDir()
	junk := make([]byte, 4096)
	rand.Read(junk)
	junk[0], junk[1], junk[2] = 0xde, 0xad, 0 // no magic; a NUL as in any binary
	for _, name := range []string{"x.cpio.gz", "blob"} {
		if err := os.WriteFile(filepath.Join(dir, name), junk, 0o644); err != nil {
			t.Fatal(err)
		}
		r := fledge(t, dir, nil, "ls", name)
		if r.code != 1 || !strings.Contains(r.stderr, "found bytes de ad 00") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || strings.Contains(r.stderr, "TOML") {
			t.Errorf("fledge ls %s: exit %d, stderr %q; want one line with its first bytes", name, r.code, r.stderr)
		}
	}
	mustFledge(t, dir, nil, "pack", "-c", filepath.Join(copyExample(t, "none"), "fledge.toml"), "-o", filepath.Join(dir, "p.cpio"), "--compression", "none")
	bz, err := exec.Command("bzip2", "-c", filepath.Join(dir, "p.cpio")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "initrd"), bz, 0o644); err != nil {
		t.Fatal(err)
	}
	want := mustFledge(t, dir, nil, "ls", "p.cpio").stdout
	if got := mustFledge(t, dir, nil, "ls", "initrd").stdout; got != want {
		t.Errorf("ls of the bzip2 artifact:\n%s\nwant:\n%s", got, want)
	}
}

// TestLsSegmentsJSON: early + zstd + gzip is the segments of each, at the
// offsets where each starts.
func TestLsSegmentsJSON(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(copyExample(t, "none"), "fledge.toml")
	var parts [][]byte
	for _, c := range []string{"none", "zstd", "gzip"} {
		out := filepath.Join(dir, c)
		mustFledge(t, dir, nil, "pack", "-c", recipe, "-o", out, "--compression", c)
		m, _ := filepath.Glob(out + ".cpio*")
		if len(m) != 1 {
			t.Fatalf("pack %s wrote %v", c, m)
		}
		b, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	art := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(art, slices.Concat(parts[0], parts[1], parts[2]), 0o644); err != nil {
		t.Fatal(err)
	}
	segments := func(p string) []map[string]any {
		t.Helper()
		var segs []map[string]any
		if err := json.Unmarshal([]byte(mustFledge(t, dir, nil, "ls", "--segments", "--json", p).stdout), &segs); err != nil {
			t.Fatal(err)
		}
		return segs
	}
	// A zstd pack is a frame per piece (busybox is one of its own), each a
	// segment: the image has those, after the early archive.
	wantOff := []float64{0}
	wantKind := []string{"none"}
	for _, z := range segments(filepath.Join(dir, "zstd.cpio.zst")) {
		wantOff = append(wantOff, float64(len(parts[0]))+z["offset"].(float64))
		wantKind = append(wantKind, "zstd")
	}
	wantOff = append(wantOff, float64(len(parts[0])+len(parts[1])))
	wantKind = append(wantKind, "gzip")
	segs := segments(art)
	if len(wantOff) < 4 || len(segs) != len(wantOff) {
		t.Fatalf("%d segments, want %d (the zstd pack's in the middle, two at least): %v", len(segs), len(wantOff), segs)
	}
	for i, s := range segs {
		if s["offset"] != wantOff[i] || s["compression"] != wantKind[i] || s["entries"].(float64) < 1 || s["bytes"].(float64) <= 0 || s["compressed_bytes"].(float64) <= 0 {
			t.Errorf("segment %d: %v, want offset %v, compression %s", i, s, wantOff[i], wantKind[i])
		}
	}
	human := mustFledge(t, dir, nil, "ls", "--segments", art).stdout
	if !strings.Contains(human, "COMPRESSION") || strings.Count(human, "\n") != len(segs)+1 {
		t.Errorf("ls --segments:\n%s", human)
	}
}
