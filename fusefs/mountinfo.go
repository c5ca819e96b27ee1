package fusefs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fsType is the type the kernel lists a fledge mount under: FUSE mounts
// are "fuse." followed by the Name of the mount options.
const fsType = "fuse.fledge"

// mounted is what /proc/self/mountinfo says is mounted at a path.
type mounted struct {
	fsType, source string
}

// fledge reports whether the mount is one fledge made.
func (m mounted) fledge() bool { return m.fsType == fsType && m.source == "fledge" }

func (m mounted) String() string {
	return fmt.Sprintf("a %s mount (source %s)", m.fsType, ShellQuote(m.source))
}

// mountAt returns the topmost mount at mountpoint, and false when nothing
// is mounted there. The path is compared the way the kernel lists it:
// absolute, with symlinks resolved; a stale FUSE mount cannot be resolved
// itself ("transport endpoint is not connected"), so then only its parent
// is.
func mountAt(mountpoint string) (mounted, bool, error) {
	p, err := canonical(mountpoint)
	if err != nil {
		return mounted{}, false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mounted{}, false, err
	}
	defer f.Close()
	var top mounted
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - type source super-options
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fields) || unescapeMountinfo(fields[4]) != p {
			continue
		}
		// Later lines are later mounts: the last one at a path is on top.
		top, found = mounted{fsType: fields[sep+1], source: unescapeMountinfo(fields[sep+2])}, true
	}
	if err := sc.Err(); err != nil {
		return mounted{}, false, fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	return top, found, nil
}

// canonical makes mountpoint absolute with its symlinks resolved, or only
// its parent's where the mountpoint itself cannot be resolved.
func canonical(mountpoint string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		return p, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo field.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
