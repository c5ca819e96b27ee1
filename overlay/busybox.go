package overlay

import (
	"fmt"
	"path"
	"strings"
)

// BusyBox returns the layer named "busybox": the binary at /bin/busybox
// (0755) and a relative symlink for each applet, in the directory BusyBox's
// own installer would use (see appletDir). Relative links keep working when
// the image is extracted or mounted somewhere else. Applets named "busybox"
// (it would replace the binary) and "linuxrc" (an old-style init that must
// not appear by accident) are skipped. source is the provenance recorded on
// every entry, such as the download URL or cache path.
func BusyBox(bin Content, source string, applets []string) Layer {
	return &busyboxLayer{bin: bin, source: source, applets: applets}
}

type busyboxLayer struct {
	bin     Content
	source  string
	applets []string
}

func (b *busyboxLayer) Name() string { return "busybox" }

func (b *busyboxLayer) Entries() ([]Entry, error) {
	r, err := b.bin.Open()
	if err != nil {
		return nil, fmt.Errorf("busybox binary %s: %w", b.source, err)
	}
	size := r.Size()
	r.Close()
	list := []Entry{{
		Path: "/bin/busybox", Type: Regular, Perm: 0o755, Size: size,
		Content: b.bin, Layer: "busybox", Source: b.source,
	}}
	seen := map[string]bool{}
	for _, name := range b.applets {
		if name == "busybox" || name == "linuxrc" || seen[name] {
			continue
		}
		if !validApplet(name) {
			return nil, fmt.Errorf("busybox applet %q: expected a short name of a-z, 0-9, '.', '_', '-' (or \"[\", \"[[\")", name)
		}
		seen[name] = true
		dir := appletDir(name)
		list = append(list, Entry{
			Path: path.Join(dir, name), Type: Symlink, Perm: 0o777,
			Linkname: appletTarget(dir), Layer: "busybox", Source: b.source,
		})
	}
	return list, nil
}

// appletTarget is the relative path from dir to /bin/busybox.
func appletTarget(dir string) string {
	if dir == "/bin" {
		return "busybox"
	}
	return strings.Repeat("../", strings.Count(dir, "/")) + "bin/busybox"
}

// validApplet accepts what BusyBox names its applets and nothing that could
// leave the directory ("..", "/") or hide in a listing (a leading dot):
// the names may come from an untrusted binary.
func validApplet(name string) bool {
	if name == "[" || name == "[[" {
		return true
	}
	if name == "" || len(name) > maxAppletName || name[0] == '.' {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

const maxAppletName = 32
