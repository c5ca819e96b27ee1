package initc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// compilers are tried in order: musl gives a ~22 KB init, glibc ~700 KB.
var compilers = []string{"musl-gcc", "gcc"}

// ErrNoCompiler is returned (wrapped) when no C compiler is on PATH.
var ErrNoCompiler = errors.New("no C compiler for the default init")

// Compiler returns the path of the C compiler Build uses: musl-gcc when it
// is on PATH, gcc otherwise.
func Compiler() (string, error) {
	for _, name := range compilers {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("initc: %w: neither musl-gcc nor gcc is on PATH (%s); "+
		"install one with `apt-get install musl-tools` (preferred, ~22 KB init) "+
		"or `apt-get install gcc`, or give the recipe its own init with [init] path",
		ErrNoCompiler, os.Getenv("PATH"))
}

// identity describes the compiler well enough that a different compiler,
// version or target gives a different cache key: its resolved path, its
// --version text and its target triple.
func identity(ctx context.Context, cc string) (string, error) {
	resolved, err := filepath.EvalSymlinks(cc)
	if err != nil {
		return "", fmt.Errorf("initc: resolve compiler %s: %w", cc, err)
	}
	parts := []string{"path " + resolved}
	for _, arg := range []string{"--version", "-dumpmachine"} {
		out, err := compilerCommand(ctx, cc, arg).Output()
		if err != nil {
			return "", fmt.Errorf("initc: %s %s failed: %w; "+
				"is the compiler installed completely? (apt-get install musl-tools or gcc)",
				cc, arg, err)
		}
		parts = append(parts, arg+" "+strings.TrimSpace(string(out)))
	}
	return strings.Join(parts, "\n"), nil
}
