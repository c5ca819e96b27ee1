package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/volantvm/fledge/overlay"
)

// HostLocation locates files whose content is a host file (mappings,
// edits, a custom init, cached downloads) and fails for the rest, which
// only exist inside an archive or in memory.
func HostLocation(n *overlay.Node) (string, error) {
	if h, ok := n.Content.(overlay.HostFile); ok {
		return filepath.Abs(string(h))
	}
	return "", fmt.Errorf("its content (layer %s) is not a host file gen_init_cpio could read; pass --extract-to DIR to write such contents into DIR", n.Layer)
}

// Extractor locates host files where they are and writes every other
// content once into Dir, named by its sha256, so a listing of an artifact
// or of the compiled init can be fed to gen_init_cpio.
type Extractor struct {
	Dir string
}

// Locate is a Locator.
func (x Extractor) Locate(n *overlay.Node) (string, error) {
	if _, ok := n.Content.(overlay.HostFile); ok {
		return HostLocation(n)
	}
	if n.Content == nil {
		return "", fmt.Errorf("regular file without content (layer %s)", n.Layer)
	}
	dir, err := filepath.Abs(x.Dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--extract-to: %w", err)
	}
	return extract(n.Content, dir)
}

// extract copies c into dir through a temporary file and renames it to its
// hash, so equal contents are stored once and a crash leaves no half file
// under a final name.
func extract(c overlay.Content, dir string) (string, error) {
	r, err := c.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	tmp, err := os.CreateTemp(dir, ".extract-*")
	if err != nil {
		return "", fmt.Errorf("--extract-to: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("--extract-to: writing %s: %w", tmp.Name(), err)
	}
	dst := filepath.Join(dir, hex.EncodeToString(h.Sum(nil)))
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("--extract-to: %w", err)
	}
	return dst, nil
}
