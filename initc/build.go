// Package initc provides fledge's own C init: the PID 1 of a default-mode
// initramfs, which mounts /dev, /proc, /sys, /tmp and /run, loads the
// modules /etc/fledge/modules lists, brings up lo and the interface of the
// command line's ip= (where the kernel did not), and execs /bin/kestrel.
// fledge carries it prebuilt (see prebuilt.go), so building an image needs
// no compiler; on request the embedded source is compiled on the host and
// cached by what determines its bytes.
package initc

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed init.c
var source []byte

// Source returns the C source of the init.
func Source() []byte {
	return bytes.Clone(source)
}

// srcName and binName are fixed so nothing of the temporary build
// directory's random name can reach the binary.
const (
	srcName = "init.c"
	binName = "init"
)

// flags are the compiler flags. -s strips symbols and
// --build-id=none drops the note whose hash would be the only thing in
// the output that nobody asked for; -ffile-prefix-map maps the build
// directory (the "%s") to "." for anything that records a path.
var flags = []string{
	"-static", "-Os", "-s", "-Wl,--build-id=none",
	"-Wall", "-Wextra", "-ffile-prefix-map=%s=.",
}

// Build returns the static init binary: the prebuilt one when cc is empty,
// else the one the compiler cc (a name on PATH or a path; see CompilerEnv)
// makes of the source. A compiled init is read from cacheDir/initc/<key>
// when an earlier Build with the same source, compiler and flags left it
// there; an empty cacheDir compiles every time.
func Build(ctx context.Context, cc, cacheDir string) ([]byte, error) {
	if cc == "" {
		return Prebuilt()
	}
	cc, err := lookCompiler(cc)
	if err != nil {
		return nil, err
	}
	if cacheDir == "" {
		return compile(ctx, cc)
	}
	id, err := identity(ctx, cc)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cacheDir, "initc", cacheKey(id))
	if bin, ok, err := readCache(path); err != nil || ok {
		return bin, err
	}
	bin, err := compile(ctx, cc)
	if err != nil {
		return nil, err
	}
	if err := writeCache(path, bin); err != nil {
		return nil, err
	}
	return bin, nil
}

// compile builds the init in a fresh temporary directory with cc.
func compile(ctx context.Context, cc string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "fledge-initc-")
	if err != nil {
		return nil, fmt.Errorf("initc: create build directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, srcName), source, 0o644); err != nil {
		return nil, fmt.Errorf("initc: write source: %w", err)
	}
	args := append(compileFlags(dir), "-o", binName, srcName)
	cmd := compilerCommand(ctx, cc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initc: %s %s failed: %w\n%s\n"+
			"a static build needs a complete toolchain and static C library: "+
			"apt-get install musl-tools, or gcc and libc6-dev",
			cc, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	bin, err := os.ReadFile(filepath.Join(dir, binName))
	if err != nil {
		return nil, fmt.Errorf("initc: read compiled init: %w", err)
	}
	return bin, nil
}

// compileFlags returns flags with the build directory filled in.
func compileFlags(dir string) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		if strings.Contains(f, "%s") {
			f = fmt.Sprintf(f, dir)
		}
		out[i] = f
	}
	return out
}

// compilerCommand runs cc with a minimal environment: variables such as
// GCC_EXEC_PREFIX, LIBRARY_PATH or REALGCC (read by musl-gcc) would change
// the output without changing the cache key, and LC_ALL=C keeps the
// --version text that goes into the key independent of the locale.
func compilerCommand(ctx context.Context, cc string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cc, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	}
	return cmd
}
