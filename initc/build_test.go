package initc

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestBuildGivesStrippedStaticELF(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tools   []string
		maxSize int
		glibc   bool
	}{
		{"musl-gcc", muslTools, 32 << 10, false},
		{"gcc", gccTools, 2 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := buildWith(t, t.TempDir(), tc.tools...)
			t.Logf("init built with %s: %d bytes", tc.name, len(bin))
			if len(bin) > tc.maxSize {
				t.Errorf("init is %d bytes, want at most %d", len(bin), tc.maxSize)
			}
			f, err := elf.NewFile(bytes.NewReader(bin))
			if err != nil {
				t.Fatalf("output is not ELF: %v", err)
			}
			if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
				t.Errorf("got %v %v %v, want a 64-bit x86-64 executable", f.Class, f.Machine, f.Type)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has a %v program header: not static", p.Type)
				}
			}
			for _, name := range []string{".note.gnu.build-id", ".symtab", ".debug_info", ".interp"} {
				if f.Section(name) != nil {
					t.Errorf("has section %s, want none (static, stripped, no build id)", name)
				}
			}
			// glibc marks its binaries with an ABI note; musl does not,
			// which tells the two builds apart.
			if got := f.Section(".note.ABI-tag") != nil; got != tc.glibc {
				t.Errorf(".note.ABI-tag present = %v, want %v (linked against glibc?)", got, tc.glibc)
			}
		})
	}
}

// TestSourceCompilesWithoutWarnings runs both compilers on the source with
// the package's flags and -Werror.
func TestSourceCompilesWithoutWarnings(t *testing.T) {
	for _, tools := range [][]string{muslTools, gccTools} {
		t.Run(tools[0], func(t *testing.T) {
			t.Setenv("PATH", toolDir(t, tools...))
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, srcName), Source(), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(compileFlags(dir), "-Werror", "-o", binName, srcName)
			cmd := compilerCommand(testContext(t), tools[0], args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Fatalf("%s %s: %v\n%s", tools[0], strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestSecondBuildIsCacheHit proves the compiler does not run again: the
// musl-gcc on PATH is a wrapper that logs every compile (a call with -o).
func TestSecondBuildIsCacheHit(t *testing.T) {
	dir := toolDir(t, "x86_64-linux-gnu-gcc", "as", "ld")
	log := filepath.Join(t.TempDir(), "compiles")
	real := hostTool(t, "musl-gcc")
	wrapper := "#!/bin/sh\n" +
		"case \" $* \" in *\" -o \"*) echo compile >>" + log + " ;; esac\n" +
		"exec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "musl-gcc"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	cache := t.TempDir()

	first, err := Build(testContext(t), "musl-gcc", cache)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(testContext(t), "musl-gcc", cache)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("second Build returned other bytes than the first")
	}
	logged, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the wrapper never logged a compile: %v", err)
	}
	if n := strings.Count(string(logged), "compile"); n != 1 {
		t.Errorf("compiler ran %d times for two Builds, want 1 (second must hit the cache)", n)
	}
	entries, err := filepath.Glob(filepath.Join(cache, "initc", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(filepath.Base(entries[0])) {
		t.Fatalf("cache holds %v, want one file named by a sha256", entries)
	}
	cached, err := os.ReadFile(entries[0])
	if err != nil || !bytes.Equal(cached, first) {
		t.Errorf("cached file differs from the built init (err %v)", err)
	}
}

// TestCacheKeyedByCompiler: a musl build in the cache must not be handed
// out when only gcc is available, and vice versa.
func TestCacheKeyedByCompiler(t *testing.T) {
	cache := t.TempDir()
	musl := buildWith(t, cache, muslTools...)
	glibc := buildWith(t, cache, gccTools...)
	if bytes.Equal(musl, glibc) {
		t.Fatal("gcc Build returned the cached musl init")
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "initc", "*"))
	if len(entries) != 2 {
		t.Errorf("cache holds %d entries, want 2 (one per compiler): %v", len(entries), entries)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	for _, tools := range [][]string{muslTools, gccTools} {
		t.Run(tools[0], func(t *testing.T) {
			a := buildWith(t, t.TempDir(), tools...)
			b := buildWith(t, t.TempDir(), tools...)
			uncached := buildWith(t, "", tools...)
			if !bytes.Equal(a, b) || !bytes.Equal(a, uncached) {
				t.Error("two builds in different directories gave different bytes")
			}
		})
	}
}

func TestMissingCompiler(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cache := t.TempDir()
	_, err := Build(testContext(t), "musl-gcc", cache)
	if !errors.Is(err, ErrNoCompiler) {
		t.Fatalf("got %v, want ErrNoCompiler", err)
	}
	for _, want := range []string{"FLEDGE_INIT_CC=musl-gcc", "apt-get install musl-tools", "apt-get install gcc", "unset FLEDGE_INIT_CC"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %q", err, want)
		}
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("failed Build left %d entries in the cache", len(entries))
	}
}

// TestBrokenToolchain: gcc without an assembler fails with the compiler's
// own message and a hint, and caches nothing.
func TestBrokenToolchain(t *testing.T) {
	t.Setenv("PATH", toolDir(t, "gcc"))
	cache := t.TempDir()
	_, err := Build(testContext(t), "gcc", cache)
	if err == nil {
		t.Fatal("Build succeeded without an assembler")
	}
	for _, want := range []string{"cannot execute 'as'", "apt-get install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %q", err, want)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(cache, "initc", "*")); len(entries) != 0 {
		t.Errorf("failed Build left %v in the cache", entries)
	}
}

// The README, docs/kernel.md and the message about a missing compiler
// state the size of the prebuilt init; each must stay its size, to the
// nearest KB.
func TestReadmeStatesTheInitSize(t *testing.T) {
	want := strconv.Itoa((len(prebuilt) + 512) >> 10)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	_, noCC := lookCompiler("fledge-no-such-compiler")
	for _, c := range []struct{ where, text, pattern string }{
		{"README.md", read("README.md"), `a ~(\d+) KB init`},
		{"docs/kernel.md", read("docs/kernel.md"), `small \(about (\d+) KB`},
		{"the missing-compiler message", fmt.Sprint(noCC), `a ~(\d+) KB init`},
	} {
		m := regexp.MustCompile(c.pattern).FindStringSubmatch(c.text)
		if m == nil {
			t.Errorf("%s no longer matches %q; keep the size stated, or drop it from this test", c.where, c.pattern)
		} else if m[1] != want {
			t.Errorf("%s says ~%s KB; the prebuilt init is %d bytes (~%s KB)", c.where, m[1], len(prebuilt), want)
		}
	}
}
