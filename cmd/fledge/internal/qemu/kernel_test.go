package qemu

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A kernel is checked as QEMU's x86 loader would take it: the real kernel,
// a PVH ELF and a multiboot image pass; what QEMU refuses is named.
func TestCheckKernel(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldLinux := make([]byte, 0x400)
	copy(oldLinux[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(oldLinux[0x206:], 0x0105)
	mb := make([]byte, 64)
	magic, flags := uint32(0x1BADB002), uint32(0x00010000)
	binary.LittleEndian.PutUint32(mb[16:], magic)
	binary.LittleEndian.PutUint32(mb[20:], flags)
	binary.LittleEndian.PutUint32(mb[24:], -(magic + flags))
	tests := []struct {
		name, path, want string
	}{
		{"bzImage", testKernel(t), ""},
		{"PVH ELF", gccELF(t, dir, "pvh", pvhNote), ""},
		{"multiboot", write("multiboot", mb), ""},
		{"C source", write("hello.c", []byte("#include <stdio.h>\nint main(void) { puts(\"hi\"); }\n")), `is text beginning "#include <stdio.h>", not a kernel`},
		{"ELF without note", gccELF(t, dir, "plain", ""), "is an ELF file (ET_EXEC, EM_X86_64) without a PVH entry note"},
		{"gzip", write("app.cpio.gz", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}), "is gzip-compressed data"},
		{"cpio", write("app.cpio", []byte("070701000000000000")), "is a cpio archive"},
		{"empty", write("empty", nil), "is empty"},
		{"boot protocol 1.x", write("old", oldLinux), "boot protocol 1.05, too old"},
		{"binary", write("blob", []byte{0, 1, 2, 0xff}), "the bytes 00 01 02 ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKernel(tt.path)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "expected a bzImage") {
				t.Fatalf("error %v; want one saying it %s and what is expected", err, tt.want)
			}
		})
	}
}

// pvhNote is the note a vmlinux built with CONFIG_PVH carries: "Xen",
// XEN_ELFNOTE_PHYS32_ENTRY (18), the 32-bit entry point.
const pvhNote = `	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.long _start
`

// gccELF assembles a static x86-64 ELF whose code halts, with notes.
func gccELF(t *testing.T, dir, name, notes string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc not found: install the Debian package gcc")
	}
	src := filepath.Join(dir, name+".S")
	text := notes + "\t.text\n\t.globl _start\n_start:\n\thlt\n\tjmp _start\n"
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if msg, err := exec.Command(gcc, "-nostdlib", "-static", "-no-pie", "-Wl,-Ttext=0x100000", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, msg)
	}
	return out
}
