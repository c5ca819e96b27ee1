package initc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:generate go run ./internal/mkprebuilt prebuilt

// The init fledge carries, so that building an image needs no compiler:
// init.c compiled by `go generate ./initc` with musl-gcc, and its stamp,
// which records the sha256 of the source it was made from (init.c
// includes no header of the repository, only the C library's). Only an
// x86_64 build is carried: fledge's images are x86_64 whatever the host
// (its default BusyBox, the Kestrel releases and `fledge boot`'s QEMU), so
// an init of another architecture would have nothing to run with.
var (
	//go:embed prebuilt/init-x86_64
	prebuilt []byte
	//go:embed prebuilt/init-x86_64.sha256
	prebuiltStamp []byte
)

const (
	// PrebuiltName is the prebuilt init's file, and StampName its stamp's,
	// in the folder Generate writes to (initc/prebuilt).
	PrebuiltName = "init-x86_64"
	StampName    = PrebuiltName + ".sha256"

	// Regenerate is the command that remakes the prebuilt init, run from
	// the repository's root.
	Regenerate = "go generate ./initc"

	// prebuiltCC compiles the prebuilt init: musl gives a ~21 KB static
	// init, glibc ~700 KB.
	prebuiltCC = "musl-gcc"
)

// Prebuilt returns the init fledge carries. It fails when the stamp does
// not match the embedded source and binary: the source changed and the
// init was not regenerated.
func Prebuilt() ([]byte, error) {
	if err := checkStamp(prebuiltStamp, source, prebuilt); err != nil {
		return nil, err
	}
	return bytes.Clone(prebuilt), nil
}

// checkStamp reports whether stamp records src as init.c and bin as the
// prebuilt init.
func checkStamp(stamp, src, bin []byte) error {
	for _, f := range []struct {
		line, what string
	}{
		{sumLine(srcName, src), "initc/init.c"},
		{sumLine("prebuilt/"+PrebuiltName, bin), "initc/prebuilt/" + PrebuiltName},
	} {
		if !strings.Contains(string(stamp), f.line) {
			return fmt.Errorf("initc: initc/prebuilt/%s records another %s than the one built in (sha256 %s); "+
				"regenerate the prebuilt init with `%s` (needs musl-gcc: apt-get install musl-tools) and commit initc/prebuilt, "+
				"or set %s=musl-gcc to compile the init at build time",
				StampName, f.what, strings.Fields(f.line)[0], Regenerate, CompilerEnv)
		}
	}
	return nil
}

// sumLine is the line `sha256sum NAME` prints for data, so that
// `cd initc && sha256sum -c prebuilt/init-x86_64.sha256` checks the files.
func sumLine(name string, data []byte) string {
	return fmt.Sprintf("%x  %s\n", sha256.Sum256(data), name)
}

// Generate compiles the source with musl-gcc into dir/PrebuiltName and
// writes its stamp, dir/StampName: what `go generate ./initc` runs. The
// same source and compiler give the same bytes on any machine.
func Generate(ctx context.Context, dir string) error {
	cc, err := lookCompiler(prebuiltCC)
	if err != nil {
		return err
	}
	desc, err := describe(ctx, cc)
	if err != nil {
		return err
	}
	bin, err := compile(ctx, cc)
	if err != nil {
		return err
	}
	if err := checkX86Static(bin); err != nil {
		return fmt.Errorf("initc: %s made %w; the prebuilt init is x86_64: generate it on an x86_64 host", prebuiltCC, err)
	}
	stamp := fmt.Sprintf("# initc/prebuilt/%s: initc/init.c compiled by `%s`, not to be edited.\n"+
		"# compiler: %s (%s)\n# flags: %s\n# check: cd initc && sha256sum -c prebuilt/%s\n",
		PrebuiltName, Regenerate, prebuiltCC, desc, strings.Join(compileFlags("DIR"), " "), StampName) +
		sumLine(srcName, source) + sumLine("prebuilt/"+PrebuiltName, bin)
	if err := os.WriteFile(filepath.Join(dir, PrebuiltName), bin, 0o644); err != nil {
		return fmt.Errorf("initc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, StampName), []byte(stamp), 0o644); err != nil {
		return fmt.Errorf("initc: %w", err)
	}
	return nil
}

// checkX86Static reports whether bin is a static x86-64 executable.
func checkX86Static(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("no ELF file: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return fmt.Errorf("a %v %v %v file, not a 64-bit x86-64 executable", f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("an executable with a %v program header, not a static one", p.Type)
		}
	}
	return nil
}
