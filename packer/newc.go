// Package packer writes the merged view of a layer stack as a newc cpio
// archive (the format the kernel unpacks into its initramfs) and reads such
// archives back as a layer.
package packer

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Header is the metadata of one newc record, in the units of the format.
type Header struct {
	// Name is the archive name: "." for the root, otherwise relative
	// ("bin/sh"), as GNU cpio and the kernel's own gen_init_cpio write it.
	Name  string
	Ino   uint64
	Mode  uint32 // stat(2) mode, type bits included
	UID   int
	GID   int
	NLink uint32
	MTime int64 // seconds since the Unix epoch
	Size  int64 // bytes of data that follow the name
	// RDevMajor and RDevMinor are the numbers of a device node.
	RDevMajor, RDevMinor uint32
}

const (
	newcMagic     = "070701"
	newcHeaderLen = 110
	trailerName   = "TRAILER!!!"
	// maxNameSize is the kernel's PATH_MAX: it refuses longer names
	// (namesize counts the terminating NUL).
	maxNameSize = 4096
	// The kernel keeps device numbers in a 32-bit dev_t: 12 bits of major
	// and 20 of minor. Larger numbers fit the header but would be mangled.
	maxMajor = 1<<12 - 1
	maxMinor = 1<<20 - 1
	// blockSize is the unit GNU cpio pads whole archives to; padding the
	// same way lets an archive be prepended to another (the kernel's
	// early-microcode form) without surprises for either reader.
	blockSize = 512
)

// Writer writes a newc archive record by record.
type Writer struct {
	w   io.Writer
	off int64
	buf []byte
}

// NewWriter returns a Writer that writes an archive to w. Close writes the
// trailer; without it the archive is incomplete.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, newcHeaderLen+maxNameSize+3)}
}

// WriteRecord writes h followed by exactly h.Size bytes read from data
// (which may be nil when h.Size is 0).
func (w *Writer) WriteRecord(h Header, data io.Reader) error {
	if err := check(&h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if err := w.writeHeader(&h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if h.Size > 0 {
		n, err := io.CopyN(w.w, data, h.Size)
		w.off += n
		if err == io.EOF {
			return fmt.Errorf("%s: content ended after %d of the %d bytes it announced; was the file truncated while packing?", h.Name, n, h.Size)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return w.pad(4)
}

// Close writes the TRAILER!!! record and pads the archive to a multiple of
// 512 bytes. It does not close the underlying writer.
func (w *Writer) Close() error {
	n, err := w.w.Write(trailerAt(w.off))
	w.off += int64(n)
	if err != nil {
		return fmt.Errorf("archive trailer: %w", err)
	}
	return nil
}

// trailerAt is the TRAILER!!! record and the padding to 512 bytes that end
// an archive whose records end at off.
func trailerAt(off int64) []byte {
	b := appendHeader(nil, &Header{Name: trailerName, NLink: 1}, off)
	return append(b, zeros[:padLen(off+int64(len(b)), blockSize)]...)
}

func (w *Writer) writeHeader(h *Header) error {
	b := appendHeader(w.buf[:0], h, w.off)
	n, err := w.w.Write(b)
	w.off += int64(n)
	return err
}

// appendHeader appends h's header and name, padded as a record starting at
// off must be. Records start on 4-byte boundaries, so the bytes of a record
// never depend on where in the archive it lands.
func appendHeader(b []byte, h *Header, off int64) []byte {
	start := len(b)
	b = append(b, newcMagic...)
	for _, v := range [...]uint64{
		h.Ino, uint64(h.Mode), uint64(h.UID), uint64(h.GID), uint64(h.NLink),
		uint64(h.MTime), uint64(h.Size), 0, 0, // the packing host's device stays out
		uint64(h.RDevMajor), uint64(h.RDevMinor), uint64(len(h.Name) + 1), 0,
	} {
		b = appendHex8(b, uint32(v))
	}
	b = append(b, h.Name...)
	b = append(b, 0)
	return append(b, zeros[:padLen(off+int64(len(b)-start), 4)]...)
}

// appendHex8 is fmt's %08X without fmt's cost per call: every header of
// the tree is formatted on every pack, warm or cold.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

var zeros [blockSize]byte

func (w *Writer) pad(unit int64) error {
	n, err := w.w.Write(zeros[:padLen(w.off, unit)])
	w.off += int64(n)
	return err
}

func padLen(off, unit int64) int64 {
	return (unit - off%unit) % unit
}

// check refuses what the fixed 8-hex-digit fields, or the kernel reading
// them, cannot represent, instead of truncating it into a different file.
func check(h *Header) error {
	switch {
	case h.Name == "" || len(h.Name)+1 > maxNameSize:
		return fmt.Errorf("name is %d bytes; a newc name must be 1 to %d bytes", len(h.Name), maxNameSize-1)
	case strings.IndexByte(h.Name, 0) >= 0:
		return fmt.Errorf("name contains a NUL byte")
	case h.Size < 0 || h.Size > math.MaxUint32:
		return fmt.Errorf("size %d bytes does not fit the newc format (at most 4 GiB - 1 per file); leave the file out or split it", h.Size)
	case h.UID < 0 || h.UID > math.MaxUint32 || h.GID < 0 || h.GID > math.MaxUint32:
		return fmt.Errorf("owner %d:%d does not fit the newc format (0 to %d)", h.UID, h.GID, uint32(math.MaxUint32))
	case h.MTime < 0 || h.MTime > math.MaxUint32:
		return fmt.Errorf("mtime %d does not fit the newc format (1970 to 2106); set SOURCE_DATE_EPOCH within that range", h.MTime)
	case h.Ino > math.MaxUint32:
		return fmt.Errorf("inode number %d does not fit the newc format", h.Ino)
	case h.RDevMajor > maxMajor || h.RDevMinor > maxMinor:
		return fmt.Errorf("device %d,%d is beyond the kernel's limits (major <= %d, minor <= %d)", h.RDevMajor, h.RDevMinor, maxMajor, maxMinor)
	}
	return nil
}
