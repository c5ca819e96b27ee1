package packer

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// bootProbe runs as /init and prints what the kernel unpacked.
const bootProbe = `#!/bin/busybox sh
bb=/bin/busybox
echo links: $($bb stat -c '%i %h' /lib/a /lib/b /usr/c | $bb sort -u) $($bb cat /usr/c)
echo devices: $($bb stat -c '%t:%T' /dev/big /dev/sda)
echo modes: $($bb stat -c '%a %u:%g' /bin/su /tmp /srv/shared /etc/owned /)
echo early: $($bb cat /kernel/x86/microcode/GenuineIntel.bin) $($bb cat /etc/motd)
echo symlink: $($bb readlink /bin/sh)
$bb poweroff -f
`

// TestKernelUnpacksTheArchive boots the kernel the archives are for on an
// early uncompressed archive followed by a compressed one, and checks what the
// kernel made of hard links, device numbers, modes, owners, symlinks and
// the order of the archives.
func TestKernelUnpacksTheArchive(t *testing.T) {
	kernel, busybox := bootInputs(t)
	early := pack(t, viewOf(t, &overlay.Static{LayerName: "early", List: []overlay.Entry{
		{Path: "/kernel/x86/microcode/GenuineIntel.bin", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("ucode")},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("early")},
	}}), None)
	boot := &overlay.Static{LayerName: "boot", List: []overlay.Entry{
		{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.HostFile(busybox)},
		{Path: "/init", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes(bootProbe)},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("main")},
	}}
	// The main archive in each compression fledge writes: the kernel must
	// take them all (xz only with a CRC32 check, lz4 in the legacy frame).
	check := func(t *testing.T, main []byte) {
		img := writeArtifact(t, "initrd", append(early, main...))
		out := bootQEMU(t, kernel, img)
		for _, want := range []string{
			"links: 3 linked data", // one "INODE 3" for the three names
			"devices: f0:fffff 8:0",
			"modes: 4755 0:0 1777 0:0 2775 0:50 640 1000:100 755 0:0",
			"early: ucode main",
			"symlink: busybox",
		} {
			if !strings.Contains(stripInode(out), want) {
				t.Errorf("console lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("console:\n%s", out)
		}
	}
	for _, c := range []string{Gzip, Zstd, Xz, LZ4} {
		t.Run(c, func(t *testing.T) {
			check(t, pack(t, viewOf(t, overlay.Skeleton(), richLayer(), boot), c))
		})
	}
	// A gzip re-pack spliced from cached pieces around a changed /init.
	t.Run("gzip-spliced", func(t *testing.T) {
		cache := t.TempDir()
		draft := &overlay.Static{LayerName: "boot", List: slices.Clone(boot.List)}
		draft.List[1].Content = overlay.Bytes(strings.Replace(bootProbe, "echo symlink", "echo draft", 1))
		packCached(t, viewOf(t, overlay.Skeleton(), richLayer(), draft), cache, 0)
		main, st := packCached(t, viewOf(t, overlay.Skeleton(), richLayer(), boot), cache, 0)
		if st.reused.Load() == 0 || st.compressed.Load() == 0 {
			t.Fatalf("%d pieces reused, %d compressed: not a spliced pack", st.reused.Load(), st.compressed.Load())
		}
		check(t, main)
	})
}

// bootInputs returns the test kernel and the static BusyBox the boot
// tests put in their images.
func bootInputs(t *testing.T) (kernel, busybox string) {
	t.Helper()
	kernel = os.Getenv("FLEDGE_TEST_KERNEL")
	if kernel == "" {
		t.Fatal("FLEDGE_TEST_KERNEL is not set: run .ci/setup, then .ci/test (or export FLEDGE_TEST_KERNEL=/var/cache/fledge-ci/vmlinuz)")
	}
	requireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found: install the Debian package busybox-static")
	}
	return kernel, busybox
}

// stripInode drops the inode number from the links line, which depends on
// the kernel's allocation, keeping only what must hold: one inode, 3 links.
func stripInode(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "links: "); ok {
			if f := strings.Fields(rest); len(f) > 1 {
				l = "links: " + strings.Join(f[1:], " ")
			}
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// bootQEMU boots img per DESIGN §6 and returns the serial console. QEMU must
// exit by itself (the probe powers off) without a panic or unpack error.
func bootQEMU(t *testing.T, kernel, img string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none",
		"-serial", "stdio", "-no-reboot", "-m", "256", "-smp", "1", "-kernel", kernel, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 init=/init no_timer_check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := out.String()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off within 90 s:\n%s", console)
	}
	if err != nil {
		t.Fatalf("QEMU: %v\n%s", err, console)
	}
	for _, bad := range []string{"Kernel panic", "Initramfs unpacking failed", "Failed to execute", "Please press Enter"} {
		if strings.Contains(console, bad) {
			t.Fatalf("console shows %q:\n%s", bad, console)
		}
	}
	return console
}

// TestKernelReadsEveryFormat boots one image made of an early archive and
// then an archive in each format the standard tools write, separated by
// runs of zero padding, lz4 last (its frame runs to the end). Each
// archive adds /seg/NAME; the kernel's listing of /seg must be what
// fledge reads from the same image.
func TestKernelReadsEveryFormat(t *testing.T) {
	kernel, busybox := bootInputs(t)
	seg := func(name string, more ...overlay.Entry) []byte {
		return pack(t, viewOf(t, &overlay.Static{LayerName: name, List: append(more,
			overlay.Entry{Path: "/seg/" + name, Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes(name)})}), None)
	}
	img := seg("early")
	add := func(archive []byte, compress []string) {
		// After an uncompressed archive the kernel wants what follows on
		// a multiple of 4 bytes; between compressed ones, any padding.
		pad := 3
		if len(img)%4 == 0 {
			pad = 4
		}
		img = append(append(img, make([]byte, pad)...), run(t, archive, compress...)...)
	}
	for _, tool := range standardTools {
		requireTool(t, tool.compress[0], tool.pkg)
		if tool.name != "lz4" {
			add(seg(tool.name), tool.compress)
		}
	}
	add(seg("lz4",
		overlay.Entry{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.HostFile(busybox)},
		overlay.Entry{Path: "/init", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes("#!/bin/busybox sh\necho segs: $(/bin/busybox ls /seg)\n/bin/busybox poweroff -f\n")},
	), []string{"lz4", "-l", "-c"})
	path := writeArtifact(t, "initrd", img)
	var want []string
	v := viewOf(t, openArtifactT(t, path, ""))
	for _, p := range viewPaths(v) {
		if name, ok := strings.CutPrefix(p, "/seg/"); ok {
			want = append(want, name)
		}
	}
	line := "segs: " + strings.Join(want, " ")
	if len(want) != len(standardTools)+1 {
		t.Errorf("fledge reads %d segment files, want %d: %v", len(want), len(standardTools)+1, want)
	}
	if out := bootQEMU(t, kernel, path); !strings.Contains(out, line) {
		t.Errorf("console lacks %q (fledge's view):\n%s", line, out)
	}
}
