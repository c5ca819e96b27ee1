package packer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

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
// already on disk, and no temporary file is written at all.
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
	o := &output{dst: dst, dir: dir, base: base}
	o.openOld()
	aw := &artifactWriter{out: o, h: sha256.New()}
	err := write(aw)
	if err == nil {
		err = o.finish()
	}
	sum := aw.sum()
	if err == nil && aw.written != nil {
		aw.written(o.holder(), sum)
	}
	o.close(err != nil)
	if err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", dst, err)
	}
	return Result{Path: dst, Size: aw.n, SHA256: hex.EncodeToString(sum[:])}, nil
}

// artifactWriter counts and hashes the bytes of an artifact on their way
// to the file, unless told not to hash them before the first: the packer
// then gives their sha256 (piecewrite.go), or has them hashed from the
// file once written.
type artifactWriter struct {
	out      *output
	h        hash.Hash
	n        int64
	unhashed bool
	vouched  *[sha256.Size]byte
	// written, when set, hears of the artifact once it is in place at
	// dst: the file, still open, and the sha256 of its bytes.
	written func(f *os.File, sum [sha256.Size]byte)
}

// copyFrom puts n bytes of f, from offset off, next in the artifact:
// through the hash while the artifact is hashed as written, otherwise as
// output.copyFrom does.
func (w *artifactWriter) copyFrom(f *os.File, off, n int64) error {
	if !w.unhashed {
		if _, err := io.Copy(w, io.NewSectionReader(f, off, n)); err != nil {
			return fmt.Errorf("writing archive: %w", err)
		}
		return nil
	}
	if err := w.out.copyFrom(f, off, n); err != nil {
		return err
	}
	w.n += n
	return nil
}

// copyOld puts n bytes of the artifact that was at dst, from offset off,
// next in the artifact, unhashed (see output.copyOld).
func (w *artifactWriter) copyOld(off, n int64) error {
	if !w.unhashed {
		return fmt.Errorf("copying %d bytes of %s into a hashed artifact", n, w.out.dst)
	}
	if err := w.out.copyOld(off, n); err != nil {
		return err
	}
	w.n += n
	return nil
}

func (w *artifactWriter) Write(p []byte) (int, error) {
	n, err := w.out.Write(p)
	if !w.unhashed {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	return n, err
}

// skipHash stops hashing, before the first byte only.
func (w *artifactWriter) skipHash() {
	w.unhashed = w.unhashed || w.n == 0
}

// vouch gives the sha256 of all the bytes.
func (w *artifactWriter) vouch(sum [sha256.Size]byte) {
	w.vouched = &sum
}

// rehash hashes the artifact's bytes, read back from the file that holds
// them, and keeps in at the hash state before each piece. Where the
// artifact begins as the one rec describes did, up to a piece whose state
// rec kept, it starts from that state: bytes that did not change are not
// hashed again.
func (w *artifactWriter) rehash(at []placed, rec *outputRecord) error {
	w.unhashed, w.vouched = false, nil
	w.h.Reset()
	from, start, same := 0, int64(0), w.out.sameUpTo()
	for i := range at {
		old, ok := rec.piece(at[i].key, at[i].off)
		if at[i].off > same || !ok || old.off != at[i].off || old.state == nil {
			break
		}
		at[i].state = old.state
		from, start = i+1, at[i].off
	}
	if start > 0 {
		if err := w.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(at[from-1].state); err != nil {
			return err
		}
	}
	r := io.NewSectionReader(w.out.holder(), start, w.n-start)
	fail := func(err error) error { return fmt.Errorf("reading back %s: %w", w.out.dst, err) }
	for i := from; i < len(at); i++ {
		if _, err := io.CopyN(w.h, r, at[i].off-start); err != nil {
			return fail(err)
		}
		start = at[i].off
		state, err := w.h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		at[i].state = state
	}
	if _, err := io.Copy(w.h, r); err != nil {
		return fail(err)
	}
	return nil
}

func (w *artifactWriter) sum() [sha256.Size]byte {
	if w.vouched != nil {
		return *w.vouched
	}
	var s [sha256.Size]byte
	w.h.Sum(s[:0])
	return s
}

// output writes an artifact without writing what is already there: while
// the bytes match those of the artifact at dst (old), they are only
// compared; at the first difference the temporary file is made, the
// matching bytes copied into it from old inside the kernel
// (copy_file_range), and the rest written to it.
type output struct {
	dst, dir, base string
	old            *os.File // dst, while it may still be kept
	oldStat        fileStat
	tmp            *os.File
	n              int64 // bytes written so far
	buf            []byte
	// copied is set once bytes of old past the start that diverge checks
	// were copied: finish checks old unchanged since it was opened.
	copied bool
	// diverged is where tmp was made: old holds the bytes before it.
	diverged int64
	// synced is closed once the sync syncEarly started is done, with
	// syncErr set.
	synced  chan struct{}
	syncErr error
	// renamed is set once tmp is in place at dst.
	renamed bool
}

// openOld opens dst if the rename would leave it as it is, bytes aside: a
// regular file of this user, mode 0644, not hard-linked.
func (o *output) openOld() {
	f, err := os.OpenFile(o.dst, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || st.Nlink != 1 || int(st.Uid) != os.Getuid() {
		f.Close()
		return
	}
	o.old, o.oldStat, o.buf = f, statOf(st), make([]byte, 1<<20)
}

func (o *output) Write(p []byte) (int, error) {
	if o.tmp == nil && o.same(p) {
		o.n += int64(len(p))
		return len(p), nil
	}
	if o.tmp == nil {
		if err := o.diverge(); err != nil {
			return 0, err
		}
	}
	n, err := o.tmp.Write(p)
	o.n += int64(n)
	return n, err
}

// copyOld puts n bytes of old, from offset off, at the current offset, for
// a caller that knows what old holds there (an output record vouches for
// old's bytes while its stat is unchanged, outputrecord.go). At the same
// offset they are old's own bytes and nothing is done; elsewhere they are
// copied inside the kernel.
func (o *output) copyOld(off, n int64) error {
	if o.tmp == nil && off == o.n {
		o.n += n
		return nil
	}
	if o.tmp == nil {
		if err := o.diverge(); err != nil {
			return err
		}
	}
	if err := copyRange(o.old, off, o.tmp, n); err != nil {
		return fmt.Errorf("copying from %s: %w", o.dst, err)
	}
	o.copied = true
	o.n += n
	return nil
}

// copyFrom puts n bytes of f, from offset off, at the current offset:
// compared with old's a part at a time while they match, copied inside the
// kernel from the first difference on.
func (o *output) copyFrom(f *os.File, off, n int64) error {
	var buf []byte
	for o.tmp == nil && n > 0 {
		if buf == nil {
			buf = make([]byte, min(n, 1<<20))
		}
		b := buf[:min(n, int64(len(buf)))]
		if err := readFull(f, b, off); err != nil {
			return fmt.Errorf("reading a compressed piece: %w", err)
		}
		if _, err := o.Write(b); err != nil {
			return err
		}
		off, n = off+int64(len(b)), n-int64(len(b))
	}
	if n == 0 {
		return nil
	}
	if err := copyRange(f, off, o.tmp, n); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	o.n += n
	return nil
}

// copyRange appends n bytes of src from offset off to dst, inside the
// kernel where the file systems allow it.
func copyRange(src *os.File, off int64, dst *os.File, n int64) error {
	for n > 0 {
		k, err := unix.CopyFileRange(int(src.Fd()), &off, int(dst.Fd()), nil, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			// Another file system, a kernel without the call, or src
			// ended early: copy through memory, which says which.
			copied, err := io.Copy(dst, io.NewSectionReader(src, off, n))
			if err == nil && copied != n {
				err = fmt.Errorf("%s ends %d bytes short of the %d to copy", src.Name(), n-copied, n)
			}
			return err
		}
		n -= int64(k)
	}
	return nil
}

// sameUpTo is how far the bytes written are old's own, in place.
func (o *output) sameUpTo() int64 {
	if o.tmp == nil {
		return o.n
	}
	return o.diverged
}

// unchanged reports whether every byte so far is old's, in place, and old
// holds no more.
func (o *output) unchanged() bool {
	return o.tmp == nil && o.old != nil && o.n == o.oldStat.size
}

// holder is the file that holds the bytes written so far.
func (o *output) holder() *os.File {
	if o.tmp != nil {
		return o.tmp
	}
	return o.old
}

// same reports whether old holds p at the current offset.
func (o *output) same(p []byte) bool {
	if o.old == nil || o.n+int64(len(p)) > o.oldStat.size {
		return false
	}
	for off := 0; off < len(p); off += len(o.buf) {
		q := p[off:min(len(p), off+len(o.buf))]
		b := o.buf[:len(q)]
		if readFull(o.old, b, o.n+int64(off)) != nil || !bytes.Equal(b, q) {
			return false
		}
	}
	return true
}

// diverge makes the temporary file and puts in it the bytes written so far,
// which old holds: old is checked unchanged since it was opened, so the
// bytes copied are the bytes compared.
func (o *output) diverge() error {
	tmp, err := os.CreateTemp(o.dir, "."+o.base+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating the artifact next to %s: %w", o.dst, err)
	}
	o.tmp, o.diverged = tmp, o.n
	if o.n == 0 {
		return nil
	}
	if _, err := o.old.Seek(0, io.SeekStart); err != nil {
		return err
	}
	copied, err := tmp.ReadFrom(&io.LimitedReader{R: o.old, N: o.n})
	if err != nil {
		return fmt.Errorf("copying the unchanged start of %s: %w", o.dst, err)
	}
	if copied != o.n {
		return fmt.Errorf("%s changed while it was packed over; pack again", o.dst)
	}
	if err := o.checkOld(); err != nil {
		return err
	}
	// Have the disk start writing the copy while the rest is packed, so
	// that the sync in finish waits for less. Only a hint: finish's sync
	// is what makes the artifact durable.
	unix.SyncFileRange(int(tmp.Fd()), 0, o.n, unix.SYNC_FILE_RANGE_WRITE)
	return nil
}

// finish leaves dst in place if it held all the bytes and no more, synced
// in case whoever wrote it did not; otherwise it syncs the temporary file
// and renames it over dst.
func (o *output) finish() error {
	if o.unchanged() {
		// Its bytes were compared, or taken on the word of its stat: a
		// change since it was opened would not show in either.
		if err := o.checkOld(); err != nil {
			return err
		}
		if err := o.old.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", o.dst, err)
		}
		return nil
	}
	if o.tmp == nil {
		if err := o.diverge(); err != nil {
			return err
		}
	}
	if o.copied {
		if err := o.checkOld(); err != nil {
			return err
		}
	}
	o.syncEarly()
	<-o.synced
	if o.syncErr != nil {
		return o.syncErr
	}
	if err := os.Rename(o.tmp.Name(), o.dst); err != nil {
		return err
	}
	o.renamed = true
	return syncDir(o.dir)
}

// checkOld fails if old changed since it was opened.
func (o *output) checkOld() error {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(o.old.Fd()), &st); err != nil {
		return err
	}
	if statOf(&st) != o.oldStat {
		return fmt.Errorf("%s changed while it was packed over; pack again", o.dst)
	}
	return nil
}

// syncEarly starts giving the temporary file its mode and syncing it,
// once every byte is in it, so that the sync runs while the caller reads
// the file back to hash it; finish waits for it.
func (o *output) syncEarly() {
	if o.tmp == nil || o.synced != nil {
		return
	}
	o.synced = make(chan struct{})
	go func() {
		defer close(o.synced)
		if o.syncErr = o.tmp.Chmod(0o644); o.syncErr == nil {
			o.syncErr = o.tmp.Sync()
		}
	}()
}

// close releases the files; failed removes the temporary file.
func (o *output) close(failed bool) {
	if o.synced != nil {
		<-o.synced
	}
	if o.old != nil {
		o.old.Close()
	}
	if o.tmp != nil {
		o.tmp.Close()
		if failed && !o.renamed {
			os.Remove(o.tmp.Name())
		}
	}
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
