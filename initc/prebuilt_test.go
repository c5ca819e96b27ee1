package initc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrebuiltIsOfThisSource fails when init.c (or the prebuilt init)
// changed and `go generate ./initc` was not run: the message says so.
func TestPrebuiltIsOfThisSource(t *testing.T) {
	bin, err := Prebuilt()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkX86Static(bin); err != nil {
		t.Fatalf("initc/prebuilt/%s is %v; regenerate it with `%s`", PrebuiltName, err, Regenerate)
	}
}

// TestStampCatchesChanges: a stamp made for one source and binary refuses
// another source, and another binary, naming the command that regenerates.
func TestStampCatchesChanges(t *testing.T) {
	edited := append(bytes.Clone(source), "/* edited */\n"...)
	for _, tc := range []struct {
		name     string
		src, bin []byte
		what     string
	}{
		{"source", edited, prebuilt, "initc/init.c"},
		{"binary", source, append(bytes.Clone(prebuilt), 0), "initc/prebuilt/" + PrebuiltName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStamp(prebuiltStamp, tc.src, tc.bin)
			if err == nil {
				t.Fatalf("stamp accepted a changed %s", tc.what)
			}
			for _, want := range []string{"another " + tc.what + " ", "`go generate ./initc`", "FLEDGE_INIT_CC=musl-gcc"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestGenerateReproducesPrebuilt regenerates the prebuilt init with
// musl-gcc into a temporary folder: the committed files must be what the
// generator makes, byte for byte (musl-gcc's output is reproducible; see
// TestBuildIsReproducible).
func TestGenerateReproducesPrebuilt(t *testing.T) {
	t.Setenv("PATH", toolDir(t, muslTools...))
	dir := t.TempDir()
	if err := Generate(testContext(t), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name      string
		committed []byte
	}{{StampName, prebuiltStamp}, {PrebuiltName, prebuilt}} {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.committed) {
			t.Errorf("`%s` makes another initc/prebuilt/%s than the committed one (%d bytes, committed %d); "+
				"run it and commit initc/prebuilt (a different musl-gcc also gives other bytes: compare the stamps)\ngenerated stamp:\n%s",
				Regenerate, f.name, len(got), len(f.committed), readFile(t, filepath.Join(dir, StampName)))
		}
	}
}

// TestBuildWithoutCompiler: with no compiler asked for, Build hands out the
// prebuilt init with nothing on PATH, and caches nothing.
func TestBuildWithoutCompiler(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cache := t.TempDir()
	bin, err := Build(testContext(t), "", cache)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bin, prebuilt) {
		t.Error("Build without a compiler did not return the prebuilt init")
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("Build of the prebuilt init left %d entries in the cache", len(entries))
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
