package overlay

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Bytes is content held in memory (the compiled init, small generated files).
type Bytes []byte

// Open implements Content.
func (b Bytes) Open() (Reader, error) {
	return bytesReader{bytes.NewReader(b)}, nil
}

type bytesReader struct{ *bytes.Reader }

func (bytesReader) Close() error { return nil }

// HostFile is content read from a host path each time it is opened, which
// is what makes mappings live: a rebuilt binary shows up in the next pack or
// FUSE read without anything being copied first.
type HostFile string

// Open implements Content (see OpenFile).
func (h HostFile) Open() (Reader, error) {
	f, st, err := h.OpenFile()
	if err != nil {
		return nil, err
	}
	return FileReader(f, st.Size), nil
}

// FileReader reads the open host file f, of size bytes (see hostReader).
func FileReader(f *os.File, size int64) Reader {
	return &hostReader{File: f, size: size}
}

// OpenFile opens the host file for reading. It refuses to follow a symlink
// in the last component, so a file swapped for a link after the layer was
// read cannot smuggle another host file into the image, and opens without
// blocking, so a FIFO swapped in is refused instead of waiting for a
// writer: anything but a regular file is an error. The file's fstat comes
// with it.
func (h HostFile) OpenFile() (*os.File, unix.Stat_t, error) {
	f, err := os.OpenFile(string(h), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, unix.Stat_t{}, err
	}
	st, err := StatRegular(f, string(h))
	if err != nil {
		f.Close()
		return nil, st, err
	}
	return f, st, nil
}

// StatRegular returns the attributes of f, opened for the host file p, and
// checks that it is a regular file: the host may have put something else
// under the name since the layer was read.
func StatRegular(f *os.File, p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, fmt.Errorf("%s: no longer a regular file", p)
	}
	return st, nil
}

// hostReader reads at most the size seen when the file was opened, so a
// file that grows while it is being packed still matches its header.
type hostReader struct {
	*os.File
	size int64
	off  int64
}

func (r *hostReader) Size() int64 { return r.size }

func (r *hostReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	if rem := r.size - off; int64(len(p)) > rem {
		n, err := r.File.ReadAt(p[:rem], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return r.File.ReadAt(p, off)
}

func (r *hostReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if rem := r.size - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.File.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err == io.EOF && r.off < r.size {
		err = fmt.Errorf("%s: shrank while being read: %w", r.Name(), io.ErrUnexpectedEOF)
	}
	return n, err
}

// Section is content stored at an offset of a larger random-access blob,
// such as a file inside a decompressed archive stream.
type Section struct {
	R      io.ReaderAt
	Off, N int64
}

// Open implements Content.
func (s Section) Open() (Reader, error) {
	return sectionReader{io.NewSectionReader(s.R, s.Off, s.N)}, nil
}

type sectionReader struct{ *io.SectionReader }

func (sectionReader) Close() error { return nil }
