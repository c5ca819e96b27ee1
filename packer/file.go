package packer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

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
// pack leaves whatever was at dst before and no temporary file. When dst
// already holds exactly these bytes (a warm build of an unchanged recipe),
// it is left in place and only synced, which is nearly free for a file
// already on disk.
func WriteFile(ctx context.Context, v *overlay.View, dst string, opts Options) (Result, error) {
	return writeFile(dst, func(w io.Writer) error { return Write(ctx, v, w, opts) })
}

// writeFile writes dst with write, through a temporary file beside it
// that is synced and renamed into place, unless dst already holds the same.
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
	same := false
	if err == nil {
		same, err = unchanged(tmp, dst, res.Size)
	}
	if err == nil && !same {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && !same {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil || same {
		os.Remove(tmp.Name())
	}
	if err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", dst, err)
	}
	res.Path = dst
	if same {
		return res, nil
	}
	return res, syncDir(dir)
}

// writeTemp fills f, hashing what it writes.
func writeTemp(f *os.File, write func(io.Writer) error) (Result, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	err := write(cw)
	if err == nil {
		err = f.Chmod(0o644)
	}
	return Result{Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// unchanged reports whether dst is already what tmp holds, as the rename
// would leave it: a regular file of this user, mode 0644, not hard-linked,
// with the same bytes. It then syncs dst, in case whoever wrote it did not.
func unchanged(tmp *os.File, dst string, size int64) (bool, error) {
	f, err := os.OpenFile(dst, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, nil
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || fi.Size() != size || st.Nlink != 1 || int(st.Uid) != os.Getuid() {
		return false, nil
	}
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(a)) {
		n := min(int64(len(a)), size-off)
		if readFull(tmp, a[:n], off) != nil || readFull(f, b[:n], off) != nil || !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("syncing %s: %w", dst, err)
	}
	return true, nil
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
