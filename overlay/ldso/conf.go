package ldso

import (
	"debug/elf"
	"io"
	"path"
	"slices"
	"strings"
)

// Flavor is the C library whose loader a program names.
type Flavor uint8

const (
	GNU  Flavor = iota // glibc's ld-linux*.so.*
	Musl               // musl's ld-musl-ARCH.so.1
)

// flavorOf tells the loader from the interpreter's name, and for a shared
// object (which names none) from its libc: musl's is "libc.so", glibc's
// "libc.so.6". The arch is musl's name for the architecture, as in its
// path file.
func flavorOf(e *ELF) (Flavor, string) {
	if arch, ok := strings.CutPrefix(path.Base(e.Interp), "ld-musl-"); ok {
		arch, _, _ = strings.Cut(arch, ".")
		return Musl, arch
	}
	if e.Interp == "" && slices.Contains(e.Needed, "libc.so") {
		return Musl, muslArch[e.Machine]
	}
	return GNU, ""
}

// muslArch is musl's name of an architecture.
var muslArch = map[elf.Machine]string{
	elf.EM_X86_64: "x86_64", elf.EM_386: "i386", elf.EM_AARCH64: "aarch64",
	elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_PPC64: "powerpc64", elf.EM_S390: "s390x",
}

// multiarch is Debian's library folder name per architecture.
var multiarch = map[elf.Machine]map[elf.Class]string{
	elf.EM_X86_64:  {elf.ELFCLASS64: "x86_64-linux-gnu", elf.ELFCLASS32: "x86_64-linux-gnux32"},
	elf.EM_386:     {elf.ELFCLASS32: "i386-linux-gnu"},
	elf.EM_AARCH64: {elf.ELFCLASS64: "aarch64-linux-gnu"},
	elf.EM_ARM:     {elf.ELFCLASS32: "arm-linux-gnueabihf"},
	elf.EM_RISCV:   {elf.ELFCLASS64: "riscv64-linux-gnu"},
	elf.EM_PPC64:   {elf.ELFCLASS64: "powerpc64le-linux-gnu"},
	elf.EM_S390:    {elf.ELFCLASS64: "s390x-linux-gnu"},
}

// DefaultDirs are the folders glibc's loader searches after the cache for
// objects of e's architecture: the multiarch folders (Debian's loader is
// built with them), then lib64 or lib32, then /lib and /usr/lib. Each
// architecture has its own, so a 32-bit program never gets 64-bit
// libraries.
func DefaultDirs(e *ELF) []string {
	var dirs []string
	if t := multiarch[e.Machine][e.Class]; t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	switch {
	case e.Class == elf.ELFCLASS64:
		dirs = append(dirs, "/lib64", "/usr/lib64")
	case e.Machine == elf.EM_386:
		dirs = append(dirs, "/lib32", "/usr/lib32")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// muslDefault is musl's search path when /etc/ld-musl-ARCH.path is absent.
var muslDefault = []string{"/lib", "/usr/local/lib", "/usr/lib"}

// maxConf bounds how much of one configuration file is read.
const maxConf = 1 << 20

// maxConfFiles bounds how many files ld.so.conf and its includes may
// name in all: includes through symlinked folders can name one file by
// ever longer paths, an exponential tree (real systems read a dozen).
const maxConfFiles = 1024

// ldSoConf returns the folders /etc/ld.so.conf of fsys configures, in
// order, following "include" lines (glob patterns, relative ones taken
// from the including file's folder) as ldconfig does. A file included
// twice is read once, so an include loop ends, and at most maxConfFiles
// are read.
func ldSoConf(fsys FS) []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(file string)
	read = func(file string) {
		if seen[file] || len(seen) >= maxConfFiles {
			return
		}
		seen[file] = true
		text, ok := readText(fsys, file)
		if !ok {
			return
		}
		for _, line := range strings.Split(text, "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !strings.HasPrefix(pat, "/") {
						pat = path.Join(path.Dir(file), pat)
					}
					for _, f := range glob(fsys, path.Clean(pat)) {
						read(f)
					}
				}
			case "hwcap":
			default:
				for _, d := range strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" \t:,", r) }) {
					// The libc5 form "dir=TYPE" names a folder too.
					d, _, _ = strings.Cut(d, "=")
					if strings.HasPrefix(d, "/") {
						dirs = append(dirs, path.Clean(d))
					}
				}
			}
		}
	}
	read("/etc/ld.so.conf")
	return dirs
}

// muslPath returns the folders of /etc/ld-musl-ARCH.path, which replace
// musl's default search path when the file exists.
func muslPath(fsys FS, arch string) []string {
	text, ok := readText(fsys, "/etc/ld-musl-"+arch+".path")
	if !ok {
		return muslDefault
	}
	var dirs []string
	for _, d := range strings.FieldsFunc(text, func(r rune) bool { return r == ':' || r == '\n' }) {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, "/") {
			dirs = append(dirs, path.Clean(d))
		}
	}
	return dirs
}

// glob expands a pattern whose last component may hold wildcards, in
// sorted order as ldconfig's glob(3) gives them.
func glob(fsys FS, pat string) []string {
	dir, base := path.Split(pat)
	if !strings.ContainsAny(base, "*?[") {
		return []string{pat}
	}
	var out []string
	for _, name := range fsys.ReadDir(dir) {
		if ok, _ := path.Match(base, name); ok {
			out = append(out, path.Join(dir, name))
		}
	}
	return out
}

// readText reads a small configuration file, following symlinks.
func readText(fsys FS, p string) (string, bool) {
	real, _, ok := follow(fsys, p)
	if !ok {
		return "", false
	}
	r, err := fsys.Open(real)
	if err != nil {
		return "", false
	}
	defer r.Close()
	b, err := io.ReadAll(io.NewSectionReader(r, 0, maxConf))
	if err != nil {
		return "", false
	}
	return string(b), true
}
