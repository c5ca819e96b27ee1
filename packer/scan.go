package packer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// member is one record read from an archive stream.
type member struct {
	Header
	DevMajor, DevMinor uint32 // of the host that packed it; scope of Ino
	start              int64  // where the header starts in the stream
	off                int64  // where the data starts in the stream
	archive            int    // which of the concatenated archives
}

// parseHeader decodes the fixed part of a newc (070701) or newc-with-CRC
// (070702) header; the kernel accepts both and so do we, ignoring the CRC.
func parseHeader(b []byte) (Header, uint32, uint32, int64, error) {
	var h Header
	if len(b) < newcHeaderLen {
		return h, 0, 0, 0, fmt.Errorf("header is %d bytes, a newc header is %d", len(b), newcHeaderLen)
	}
	if m := string(b[:6]); m != "070701" && m != "070702" {
		return h, 0, 0, 0, fmt.Errorf("found %q where a newc header (070701) should start", m)
	}
	var f [13]uint32
	for i := range f {
		v, err := parseHex(b[6+8*i : 14+8*i])
		if err != nil {
			return h, 0, 0, 0, err
		}
		f[i] = v
	}
	h = Header{
		Ino: uint64(f[0]), Mode: f[1], UID: int(f[2]), GID: int(f[3]), NLink: f[4],
		MTime: int64(f[5]), Size: int64(f[6]), RDevMajor: f[9], RDevMinor: f[10],
	}
	return h, f[7], f[8], int64(f[11]), nil
}

func parseHex(b []byte) (uint32, error) {
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, fmt.Errorf("header field %q is not hexadecimal", b)
		}
		v = v<<4 | uint32(c)
	}
	return v, nil
}

// scanner reads the records of a stream of newc archives. Every byte it
// consumes is copied to sink, so offsets in the stream are offsets in the
// sink; it never reads past what it consumes, so a caller can switch src
// between the raw file and a decompressor.
type scanner struct {
	src     *bufio.Reader
	sink    io.Writer
	pos     int64
	archive int
	members []member
}

// archives reads archives separated by zero padding until src ends.
func (s *scanner) archives() error {
	for {
		if err := s.zeros(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if head, _ := s.src.Peek(len(magicNewc)); !bytes.HasPrefix(head, magicNewc) {
			return fmt.Errorf("found %q at stream offset %d: expected another newc archive (070701) or the end", head, s.pos)
		}
		if s.pos%4 != 0 {
			// The kernel counts padding from the start of the data it
			// decompressed and stops here with "broken padding".
			return fmt.Errorf("archive at stream offset %d does not start on a multiple of 4 bytes", s.pos)
		}
		if err := s.readArchive(); err != nil {
			return err
		}
	}
}

// readArchive reads one archive through its TRAILER!!! record.
func (s *scanner) readArchive() error {
	for {
		m, err := s.next()
		if err != nil {
			return fmt.Errorf("archive %d at stream offset %d: %w", s.archive+1, s.pos, err)
		}
		if m.Name == trailerName {
			s.archive++
			return nil
		}
		s.members = append(s.members, m)
	}
}

func (s *scanner) next() (member, error) {
	var m member
	start := s.pos
	b, err := s.take(newcHeaderLen)
	if err != nil {
		return m, truncated(err, "a header")
	}
	h, devMajor, devMinor, nameSize, err := parseHeader(b)
	if err != nil {
		return m, err
	}
	if nameSize < 2 || nameSize > maxNameSize {
		return m, fmt.Errorf("name size %d: expected 2 to %d bytes", nameSize, maxNameSize)
	}
	name, err := s.take(nameSize + padLen(start+newcHeaderLen+nameSize, 4))
	if err != nil {
		return m, truncated(err, "a name")
	}
	name = name[:nameSize]
	if i := bytes.IndexByte(name, 0); i != len(name)-1 {
		return m, fmt.Errorf("name %q is not a single NUL-terminated string", name)
	}
	h.Name = string(name[:nameSize-1])
	m = member{Header: h, DevMajor: devMajor, DevMinor: devMinor, start: start, off: s.pos, archive: s.archive}
	if err := s.skip(h.Size + padLen(s.pos+h.Size, 4)); err != nil {
		return m, fmt.Errorf("%s: %w", h.Name, truncated(err, fmt.Sprintf("its %d bytes of data", h.Size)))
	}
	return m, nil
}

// take consumes n bytes. The slice is valid until the next read.
func (s *scanner) take(n int64) ([]byte, error) {
	b, err := s.src.Peek(int(n))
	if err != nil {
		return nil, err
	}
	if _, err := s.sink.Write(b); err != nil {
		return nil, fmt.Errorf("writing the stream: %w", err)
	}
	s.src.Discard(len(b))
	s.pos += n
	return b, nil
}

func (s *scanner) skip(n int64) error {
	c, err := io.CopyN(s.sink, s.src, n)
	s.pos += c
	return err
}

// align pads the stream with zeros to a multiple of 4 bytes. The kernel
// aligns an archive's fields from where the archive's data starts (the
// image itself, or the data a segment decompresses to); starting each
// segment aligned in the stream keeps that true of the stream, so the
// cached stream can be scanned again from its start.
func (s *scanner) align() error {
	n := padLen(s.pos, 4)
	if _, err := s.sink.Write(zeros[:n]); err != nil {
		return fmt.Errorf("writing the stream: %w", err)
	}
	s.pos += n
	return nil
}

// zeros consumes the zero padding that may separate archives. It returns
// io.EOF when the stream ends there.
func (s *scanner) zeros() error {
	for {
		b, err := s.src.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != 0 {
			return nil
		}
		buf, _ := s.src.Peek(s.src.Buffered())
		n := 0
		for n < len(buf) && buf[n] == 0 {
			n++
		}
		if _, err := s.take(int64(n)); err != nil {
			return err
		}
	}
}

func truncated(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the archive ends before %s: it is truncated", what)
	}
	return err
}
