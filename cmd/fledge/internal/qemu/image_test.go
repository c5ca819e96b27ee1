package qemu

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testKernel is the kernel .ci/setup unpacks; the boot tests need a real one.
func testKernel(t *testing.T) string {
	t.Helper()
	k := os.Getenv("FLEDGE_TEST_KERNEL")
	if k == "" {
		t.Fatal("FLEDGE_TEST_KERNEL is not set: run .ci/setup, then .ci/test (or export FLEDGE_TEST_KERNEL=/var/cache/fledge-ci/vmlinuz)")
	}
	if _, err := os.Stat(k); err != nil {
		t.Fatalf("FLEDGE_TEST_KERNEL: %v; run .ci/setup to fetch the test kernel", err)
	}
	return k
}

// staticBusybox is Debian's busybox-static; a dynamic BusyBox would need a
// libc the test image does not have.
func staticBusybox(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found: %v; install the Debian package busybox-static", err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v; install the Debian package busybox-static", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; install the Debian package busybox-static", path)
		}
	}
	return path
}

// initramfs packs BusyBox and an /init shell script with GNU cpio, not with
// fledge's packer, so the runner is tested on images made independently.
func initramfs(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(staticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "init"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cpio := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cpio.Dir = root
	cpio.Stdin = strings.NewReader(".\nbin\nbin/busybox\nbin/sh\ninit\n")
	cpio.Stdout = f
	var stderr bytes.Buffer
	cpio.Stderr = &stderr
	if err := cpio.Run(); err != nil {
		t.Fatalf("cpio -o: %v: %s (install the Debian package cpio)", err, stderr.String())
	}
	return out
}

// processesWith lists running processes whose command line holds token.
func processesWith(t *testing.T, token string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil {
			continue // the process ended while we looked
		}
		if bytes.Contains(b, []byte(token)) {
			found = append(found, filepath.Dir(c)+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return found
}
