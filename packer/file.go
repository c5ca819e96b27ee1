package packer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/volantvm/fledge/overlay"
)

// Result describes a written artifact.
type Result struct {
	Path   string
	Size   int64
	SHA256 string // lowercase hex
}

// WriteFile packs the view into dst. The archive is written to a temporary
// file beside dst, synced and renamed into place, so a failed or cancelled
// pack leaves whatever was at dst before and no temporary file.
func WriteFile(ctx context.Context, v *overlay.View, dst string, opts Options) (Result, error) {
	return writeFile(dst, func(w io.Writer) error { return Write(ctx, v, w, opts) })
}

// writeFile writes dst with write, through a temporary file beside it
// that is synced and renamed into place.
func writeFile(dst string, write func(io.Writer) error) (Result, error) {
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return Result{}, fmt.Errorf("creating the artifact next to %s: %w", dst, err)
	}
	res, err := writeTemp(tmp, write)
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return Result{}, fmt.Errorf("writing %s: %w", dst, err)
	}
	res.Path = dst
	return res, syncDir(dir)
}

// writeTemp fills and closes f, hashing what it writes.
func writeTemp(f *os.File, write func(io.Writer) error) (Result, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	err := write(cw)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return Result{Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// syncDir makes the rename durable: without it a crash can leave the old
// artifact, or none, after the caller was told the new one exists.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
