package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"strings"
)

// maxModinfo bounds the .modinfo section read from a module: real ones
// are a few KiB.
const maxModinfo = 1 << 20

// modinfo is what the loader needs of a module's .modinfo section.
type modinfo struct {
	name     string
	depends  []string
	softdep  softdeps
	aliases  []string
	vermagic string
}

// readModinfo parses the .modinfo section of an ELF module: NUL-separated
// "key=value" strings.
func readModinfo(r io.ReaderAt) (modinfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return modinfo{}, fmt.Errorf("not an ELF kernel module: %w", err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return modinfo{}, fmt.Errorf("no .modinfo section: not a kernel module")
	}
	if s.Size > maxModinfo {
		return modinfo{}, fmt.Errorf(".modinfo section of %d bytes, expected at most %d", s.Size, maxModinfo)
	}
	data, err := s.Data()
	if err != nil {
		return modinfo{}, fmt.Errorf(".modinfo: %w", err)
	}
	var mi modinfo
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.name = normalize(v)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					mi.depends = append(mi.depends, normalize(d))
				}
			}
		case "softdep":
			sd := parseSoftdep(v)
			mi.softdep.pre = append(mi.softdep.pre, sd.pre...)
			mi.softdep.post = append(mi.softdep.post, sd.post...)
		case "alias":
			mi.aliases = append(mi.aliases, v)
		case "vermagic":
			mi.vermagic = strings.TrimSpace(v)
		}
	}
	return mi, nil
}
