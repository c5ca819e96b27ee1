// Package ldso resolves what the dynamic loader loads for a program: its
// ELF interpreter and the transitive DT_NEEDED closure, searched the way
// glibc's ld.so and musl's loader search (RPATH and RUNPATH with $ORIGIN,
// ld.so.conf and its includes, the multiarch folders, musl's path file).
//
// ELF files are only read (headers, program headers, the dynamic section),
// never executed: the programs are the user's and may be hostile. Lookups
// go through FS, so the same resolver answers for an image (an
// overlay.View), for the build host, and for a fake sysroot in tests.
package ldso

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"
)

// ELF is what the loader reads of an object.
type ELF struct {
	Machine elf.Machine
	Class   elf.Class
	Type    elf.Type
	Interp  string   // PT_INTERP; "" for a static program or a library
	Soname  string   // DT_SONAME, the name a loaded library answers to
	Needed  []string // DT_NEEDED, in order
	RPath   []string // DT_RPATH, split at ':'; empty when DT_RUNPATH is set
	RunPath []string // DT_RUNPATH, split at ':'
	// Damaged is set for a file that starts with the ELF magic but whose
	// headers do not parse, or whose PT_INTERP the kernel refuses: it
	// cannot run or be loaded.
	Damaged bool
}

// Dynamic reports whether loading the object involves the loader.
func (e *ELF) Dynamic() bool { return e.Interp != "" || len(e.Needed) > 0 }

// Arch names the object's architecture in messages ("EM_X86_64/ELFCLASS64").
func (e *ELF) Arch() string { return fmt.Sprintf("%s/%s", e.Machine, e.Class) }

// Reader is the content of one file.
type Reader interface {
	io.ReaderAt
	io.Closer
}

// ReadELF parses r when it is an ELF file and returns nil when it is not.
func ReadELF(r io.ReaderAt) (*ELF, error) {
	magic := make([]byte, 4)
	if _, err := r.ReadAt(magic, 0); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return nil, nil
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return &ELF{Machine: elf.EM_NONE, Damaged: true}, nil
	}
	e := &ELF{Machine: f.Machine, Class: f.Class, Type: f.Type}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		// The kernel takes the first PT_INTERP as a C string and refuses
		// to run a program whose segment is longer than PATH_MAX or does
		// not end in a NUL.
		b, err := io.ReadAll(io.LimitReader(p.Open(), pathMax+1))
		if err != nil {
			return nil, fmt.Errorf("PT_INTERP: %w", err)
		}
		if len(b) < 2 || len(b) > pathMax || b[len(b)-1] != 0 {
			return &ELF{Machine: elf.EM_NONE, Damaged: true}, nil
		}
		e.Interp, _, _ = strings.Cut(string(b), "\x00")
		break
	}
	// Static programs have no dynamic section; DynString then fails,
	// which means nothing is needed.
	e.Needed, _ = f.DynString(elf.DT_NEEDED)
	if s, _ := f.DynString(elf.DT_SONAME); len(s) > 0 {
		e.Soname = s[0]
	}
	e.RunPath = dynPaths(f, elf.DT_RUNPATH)
	if len(e.RunPath) == 0 {
		// glibc ignores DT_RPATH when DT_RUNPATH is present.
		e.RPath = dynPaths(f, elf.DT_RPATH)
	}
	return e, nil
}

// pathMax is the kernel's PATH_MAX.
const pathMax = 4096

func dynPaths(f *elf.File, tag elf.DynTag) []string {
	vals, _ := f.DynString(tag)
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ":")...)
	}
	return out
}
