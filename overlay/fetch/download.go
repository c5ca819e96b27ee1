package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxBlob bounds one download: a broken or hostile server could otherwise
// stream until the disk is full. fledge's largest input, the Kestrel agent,
// is tens of megabytes.
const maxBlob = 1 << 30

// download streams src into a temporary file in the cache, hashing as it
// goes, and renames it into blobs/ only when the hash is what was wanted
// (any hash, when want is empty). Whatever fails, the cache is left as it
// was: the temporary file and every directory this call created are removed.
func (c *Cache) download(ctx context.Context, src source, want string) (string, *fileStat, error) {
	body, size, file, err := c.open(ctx, src)
	if err != nil {
		return "", nil, err
	}
	defer body.Close()
	if size > maxBlob {
		return "", nil, fmt.Errorf("the file is %s, larger than the %s fledge accepts", human(size), human(maxBlob))
	}
	var undo undoList
	defer undo.run()
	tmp, err := undo.createTemp(filepath.Join(c.Dir, "tmp"))
	if err != nil {
		return "", nil, err
	}
	got, n, err := c.copyHashed(tmp, body, src.raw, size)
	if err == nil {
		// A blob is trusted by its name from then on, never hashed
		// again: it must be on disk before the rename that names it, or
		// a crash could leave an empty file under a verified hash.
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, err
	}
	if want != "" && got != want {
		return "", nil, &MismatchError{Want: want, Got: got, Size: n}
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", nil, err
	}
	dst := c.blobPath(got)
	if err := undo.mkdirs(filepath.Dir(dst)); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", nil, fmt.Errorf("storing the download in the cache: %w", err)
	}
	undo.commit()
	return dst, file, nil
}

// MismatchError is a download whose sha256 is not the one expected.
type MismatchError struct {
	Want, Got string // hex digests
	Size      int64
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("sha256 mismatch: expected %s, got %s (%s downloaded); the file changed at its source or the checksum is wrong", e.Want, e.Got, human(e.Size))
}

// copyHashed copies body into w and returns its sha256 and length.
func (c *Cache) copyHashed(w io.Writer, body io.Reader, name string, size int64) (string, int64, error) {
	h := sha256.New()
	p := newProgress(c.Progress, name, size)
	n, err := io.Copy(io.MultiWriter(w, h, p), io.LimitReader(body, maxBlob+1))
	switch {
	case err != nil:
		return "", n, fmt.Errorf("download interrupted after %s: %w", human(n), err)
	case n > maxBlob:
		return "", n, fmt.Errorf("the download exceeds the %s fledge accepts", human(maxBlob))
	case size >= 0 && n != size:
		return "", n, fmt.Errorf("download truncated: got %s of %s", human(n), human(size))
	}
	p.done(n)
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// open starts reading src and returns its body and size (-1 if unknown),
// and for a local file its stat.
func (c *Cache) open(ctx context.Context, src source) (io.ReadCloser, int64, *fileStat, error) {
	if !src.remote() {
		return openFile(ctx, src.u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.raw, nil)
	if err != nil {
		return nil, 0, nil, err
	}
	resp, err := c.client().Do(req)
	if err != nil {
		// The caller already names the URL; keep only the reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, nil, fmt.Errorf("server answered %s", resp.Status)
	}
	return resp.Body, resp.ContentLength, nil, nil
}

func openFile(ctx context.Context, name string) (io.ReadCloser, int64, *fileStat, error) {
	start := time.Now()
	// O_NONBLOCK lets a FIFO open without a writer, so that it reaches the
	// check below instead of hanging; regular files ignore the flag.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, nil, fmt.Errorf("%s does not exist", name)
		}
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		kind := "special file"
		if fi.IsDir() {
			kind = "directory"
		}
		return nil, 0, nil, fmt.Errorf("%s is a %s, not a regular file", name, kind)
	}
	return ctxReader{ctx, f}, fi.Size(), statOf(fi, start), nil
}

// ctxReader stops a local copy when the context is cancelled, as an HTTP
// body does by itself.
type ctxReader struct {
	ctx context.Context
	io.ReadCloser
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadCloser.Read(p)
}
