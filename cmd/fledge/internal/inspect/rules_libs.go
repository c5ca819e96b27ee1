package inspect

import (
	"debug/elf"
	"path"
	"strings"

	"github.com/volantvm/fledge/overlay"
)

// multiarch is Debian's library folder name per architecture.
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64: "x86_64-linux-gnu", elf.EM_386: "i386-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu", elf.EM_ARM: "arm-linux-gnueabihf",
	elf.EM_RISCV: "riscv64-linux-gnu", elf.EM_PPC64: "powerpc64le-linux-gnu",
	elf.EM_S390: "s390x-linux-gnu",
}

// checkLibs follows DT_NEEDED from the entry points through every library
// found, so a library missing two levels down is reported too.
func checkLibs(c *checker) error {
	seen := map[*overlay.Node]bool{}
	queue := c.entryPoints()
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		info, err := c.elfOf(n)
		if err != nil {
			return err
		}
		if info == nil {
			continue
		}
		dirs := c.libDirs(info, path.Dir(n.Path))
		for _, lib := range info.Needed {
			found := c.findLib(lib, dirs)
			if found == nil {
				c.report(n.Path, "%s needs %s, found in none of %s", n.Path, lib, strings.Join(dirs, ", "))
				continue
			}
			queue = append(queue, found)
		}
	}
	return nil
}

// libDirs is the search order of the dynamic loaders: RUNPATH (or RPATH)
// with $ORIGIN expanded, the folders of ld.so.conf and musl's path file,
// then the defaults.
func (c *checker) libDirs(info *elfInfo, origin string) []string {
	var dirs []string
	for _, d := range info.RunPath {
		d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
		if d != "" {
			dirs = append(dirs, path.Clean("/"+d))
		}
	}
	dirs = append(dirs, c.confDirs()...)
	dirs = append(dirs, "/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")
	if t, ok := multiarch[info.Machine]; ok {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	return dedupe(dirs)
}

func (c *checker) findLib(name string, dirs []string) *overlay.Node {
	if strings.Contains(name, "/") {
		dirs = []string{"/"}
	}
	for _, d := range dirs {
		if n, ok := c.v.Resolve(path.Join(d, name)); ok && n.Type == overlay.Regular {
			return n
		}
	}
	return nil
}

// confDirs reads the library folders the image configures: glibc's
// /etc/ld.so.conf with the usual ld.so.conf.d include, and musl's
// /etc/ld-musl-*.path.
func (c *checker) confDirs() []string {
	var files []*overlay.Node
	if n, ok := c.v.Resolve("/etc/ld.so.conf"); ok {
		files = append(files, n)
	}
	for _, d := range []string{"/etc/ld.so.conf.d", "/etc"} {
		dir, ok := c.v.Resolve(d)
		if !ok || dir.Type != overlay.Dir {
			continue
		}
		for _, k := range c.v.Children(dir) {
			base := path.Base(k.Path)
			conf := d == "/etc/ld.so.conf.d" && strings.HasSuffix(base, ".conf")
			musl := d == "/etc" && strings.HasPrefix(base, "ld-musl-") && strings.HasSuffix(base, ".path")
			if conf || musl {
				files = append(files, k)
			}
		}
	}
	var dirs []string
	for _, f := range files {
		b, err := head(f, 64*1024)
		if err != nil {
			continue // an unreadable config file configures nothing
		}
		for _, field := range strings.FieldsFunc(string(b), func(r rune) bool { return r == ':' || r == '\n' || r == ' ' || r == '\t' }) {
			if strings.HasPrefix(field, "/") {
				dirs = append(dirs, path.Clean(field))
			}
		}
	}
	return dirs
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
