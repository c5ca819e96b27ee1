package qemu

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// kernelHead is how much of a kernel QEMU's x86 loader reads to decide
// what it is (hw/i386/x86.c: the multiboot header must lie within it).
const kernelHead = 8192

// CheckKernel refuses, before QEMU starts, a file that QEMU's x86 -kernel
// loader would refuse with an initramfs, and says what the file is. QEMU
// boots, in the order it tries them:
//   - a Linux bzImage: "HdrS" at offset 0x202, boot protocol (the 16 bits
//     at 0x206) 2.00 or later, as older ones cannot take an initramfs;
//   - a multiboot image: the magic 0x1BADB002 and its checksum, 4-byte
//     aligned, in the first 8 KiB;
//   - an ELF kernel with a PVH entry note (name "Xen", type 18,
//     XEN_ELFNOTE_PHYS32_ENTRY), such as a vmlinux built with CONFIG_PVH.
//
// Anything else makes QEMU exit with "linux kernel too old to load a ram
// disk" or "Error loading uncompressed kernel without PVH ELF Note".
func CheckKernel(path string) error {
	if err := regularFile("kernel", path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("qemu: kernel: %w", err)
	}
	defer f.Close()
	head := make([]byte, kernelHead)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("qemu: kernel %s: %w", path, err)
	}
	head = head[:n]
	found := ""
	switch {
	case len(head) >= 0x208 && string(head[0x202:0x206]) == "HdrS":
		v := binary.LittleEndian.Uint16(head[0x206:])
		if v >= 0x200 {
			return nil
		}
		found = fmt.Sprintf("a Linux kernel of boot protocol %d.%02d, too old to take an initramfs (2.00 or later can)", v>>8, v&0xff)
	case multiboot(head):
		return nil
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		var ok bool
		if ok, found = pvhELF(f); ok {
			return nil
		}
	default:
		found = describe(head)
	}
	return fmt.Errorf("qemu: kernel %s is %s, not a kernel QEMU can boot with an initramfs; expected a bzImage (\"HdrS\" at offset 0x202, as /boot/vmlinuz-* are), a multiboot image or an ELF vmlinux with a PVH entry note", path, found)
}

// multiboot reports whether head holds a multiboot header QEMU accepts.
func multiboot(head []byte) bool {
	const magic = 0x1BADB002
	for i := 0; i+12 <= len(head); i += 4 {
		if binary.LittleEndian.Uint32(head[i:]) != magic {
			continue
		}
		flags, sum := binary.LittleEndian.Uint32(head[i+4:]), binary.LittleEndian.Uint32(head[i+8:])
		if magic+flags+sum == 0 {
			return true
		}
	}
	return false
}

// pvhELF reports whether the ELF file r has a PVH entry note, and else
// what it is.
func pvhELF(r io.ReaderAt) (bool, string) {
	f, err := elf.NewFile(r)
	if err != nil {
		return false, "a damaged ELF file (" + err.Error() + ")"
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE && hasPVHNote(p.Open(), f.ByteOrder) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("an ELF file (%s, %s) without a PVH entry note", f.Type, f.Machine)
}

// hasPVHNote walks the notes of one PT_NOTE segment: each is a 12-byte
// header (name size, descriptor size, type), then the name and the
// descriptor, each padded to 4 bytes.
func hasPVHNote(r io.Reader, order binary.ByteOrder) bool {
	const xenElfnotePhys32Entry = 18
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return false
	}
	pad := func(n uint32) int { return int((uint64(n) + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, typ := order.Uint32(b), order.Uint32(b[4:]), order.Uint32(b[8:])
		b = b[12:]
		if pad(namesz) > len(b) {
			return false
		}
		name := b[:namesz]
		b = b[pad(namesz):]
		if pad(descsz) > len(b) {
			return false
		}
		b = b[pad(descsz):]
		if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(name, "\x00")) == "Xen" {
			return true
		}
	}
	return false
}

// describe says what a file that is not a kernel is, from its head: what
// was found, never a guess.
func describe(head []byte) string {
	switch {
	case len(head) == 0:
		return "empty"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip-compressed data"
	case bytes.HasPrefix(head, []byte("070701")), bytes.HasPrefix(head, []byte("070702")):
		return "a cpio archive (an initramfs is booted as the argument, not as --kernel)"
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	if s := string(bytes.TrimRight(line, "\r")); utf8.ValidString(s) && printable(s) && s != "" {
		if r := []rune(s); len(r) > 60 {
			s = string(r[:60]) + "…"
		}
		return "text beginning " + strconv.Quote(s)
	}
	if len(head) > 8 {
		head = head[:8]
	}
	return fmt.Sprintf("data beginning with the bytes % x", head)
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\t' {
			return false
		}
	}
	return true
}
