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

// CompilerEnv is the environment variable that asks for the init to be
// compiled rather than taken prebuilt: it names the compiler (musl-gcc,
// gcc, or a path). Unset or empty, fledge needs no compiler.
const CompilerEnv = "FLEDGE_INIT_CC"

// ErrNoCompiler is returned (wrapped) when the compiler a rebuild asks for
// is not on PATH.
var ErrNoCompiler = errors.New("no C compiler for the default init")

// lookCompiler returns the path of the compiler name.
func lookCompiler(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("initc: %w: %s=%s, which is not on PATH (%s); "+
			"install it (`apt-get install musl-tools` for musl-gcc, a ~21 KB init, or `apt-get install gcc libc6-dev`), "+
			"or unset %s to use the prebuilt init",
			ErrNoCompiler, CompilerEnv, name, os.Getenv("PATH"), CompilerEnv)
	}
	return path, nil
}

// identity describes the compiler well enough that a different compiler,
// version or target gives a different cache key: its resolved path and
// its description.
func identity(ctx context.Context, cc string) (string, error) {
	resolved, err := filepath.EvalSymlinks(cc)
	if err != nil {
		return "", fmt.Errorf("initc: resolve compiler %s: %w", cc, err)
	}
	desc, err := describe(ctx, cc)
	if err != nil {
		return "", err
	}
	return "path " + resolved + "\n" + desc, nil
}

// describe gives the first line of the compiler's --version and its target
// triple ("x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0, target
// x86_64-linux-gnu"): what the prebuilt init's stamp records, as it holds
// no path of the machine.
func describe(ctx context.Context, cc string) (string, error) {
	var parts []string
	for _, arg := range []string{"--version", "-dumpmachine"} {
		out, err := compilerCommand(ctx, cc, arg).Output()
		if err != nil {
			return "", fmt.Errorf("initc: %s %s failed: %w; "+
				"is the compiler installed completely? (apt-get install musl-tools or gcc)",
				cc, arg, err)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		parts = append(parts, first)
	}
	return parts[0] + ", target " + parts[1], nil
}
