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
	dyn, ok := readDynamic(f, r)
	if !ok {
		return &ELF{Machine: elf.EM_NONE, Damaged: true}, nil
	}
	e.Needed = dyn[elf.DT_NEEDED]
	if s := dyn[elf.DT_SONAME]; len(s) > 0 {
		e.Soname = s[0]
	}
	e.RunPath = splitPaths(dyn[elf.DT_RUNPATH])
	if len(e.RunPath) == 0 {
		// glibc ignores DT_RPATH when DT_RUNPATH is present.
		e.RPath = splitPaths(dyn[elf.DT_RPATH])
	}
	return e, nil
}

// pathMax is the kernel's PATH_MAX.
const pathMax = 4096

func splitPaths(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Split(v, ":")...)
	}
	return out
}

// maxDynamic bounds the dynamic segment read: 65536 entries of ELF64.
const maxDynamic = 1 << 20

// readDynamic returns the string-valued entries of the dynamic section
// the way the loader finds them: through the program headers (the last
// PT_DYNAMIC, as ld.so keeps), the string table at DT_STRTAB, an address
// mapped by a PT_LOAD segment. Section headers are for linkers; a program
// stripped of them runs all the same, and crafted ones may disagree with
// what the loader reads. No PT_DYNAMIC means a static program; one the
// loader could not follow is reported as not ok.
func readDynamic(f *elf.File, r io.ReaderAt) (map[elf.DynTag][]string, bool) {
	var seg *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			seg = p
		}
	}
	if seg == nil {
		return nil, true
	}
	d, err := io.ReadAll(io.LimitReader(seg.Open(), maxDynamic))
	if err != nil {
		return nil, false
	}
	size := 16
	if f.Class == elf.ELFCLASS32 {
		size = 8
	}
	word := func(b []byte) uint64 {
		if size == 8 {
			return uint64(f.ByteOrder.Uint32(b))
		}
		return f.ByteOrder.Uint64(b)
	}
	type entry struct {
		tag elf.DynTag
		val uint64
	}
	var strs []entry
	var strtab, strsz uint64
	haveTab := false
entries:
	for ; len(d) >= size; d = d[size:] {
		tag, val := elf.DynTag(word(d)), word(d[size/2:])
		switch tag {
		case elf.DT_NULL:
			break entries
		case elf.DT_NEEDED, elf.DT_SONAME, elf.DT_RPATH, elf.DT_RUNPATH:
			strs = append(strs, entry{tag, val})
		case elf.DT_STRTAB:
			strtab, haveTab = val, true
		case elf.DT_STRSZ:
			strsz = val
		}
	}
	if len(strs) == 0 {
		return nil, true
	}
	off, ok := fileOffset(f, strtab, strsz)
	if !haveTab || !ok {
		return nil, false
	}
	tab := io.NewSectionReader(r, int64(off), int64(strsz))
	out := map[elf.DynTag][]string{}
	for _, s := range strs {
		str, ok := cString(tab, s.val)
		if !ok {
			return nil, false
		}
		out[s.tag] = append(out[s.tag], str)
	}
	return out, true
}

// fileOffset maps the n bytes at virtual address addr to the file, through
// the PT_LOAD segment holding them.
func fileOffset(f *elf.File, addr, n uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr-p.Vaddr <= p.Filesz && n <= p.Filesz-(addr-p.Vaddr) {
			return p.Off + (addr - p.Vaddr), true
		}
	}
	return 0, false
}

// cString reads the NUL-terminated string at off in tab, which it may not
// run past.
func cString(tab *io.SectionReader, off uint64) (string, bool) {
	if off >= uint64(tab.Size()) {
		return "", false
	}
	var out []byte
	buf := make([]byte, 256)
	for at := int64(off); ; at += int64(len(buf)) {
		n, err := tab.ReadAt(buf, at)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(append(out, buf[:i]...)), true
		}
		if err != nil {
			return "", false
		}
		out = append(out, buf[:n]...)
	}
}
