package kmod

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests take real modules from the Debian kernel package .ci/setup
// unpacks ($FLEDGE_TEST_KERNEL_TREE), copied into a scratch tree per case.

// debianTree is the unpacked Debian kernel package and its one version.
func debianTree(t *testing.T) (root, version string) {
	t.Helper()
	root = os.Getenv("FLEDGE_TEST_KERNEL_TREE")
	if root == "" {
		t.Fatal("FLEDGE_TEST_KERNEL_TREE is not set: run .ci/setup, then .ci/test (or export FLEDGE_TEST_KERNEL_TREE=/var/cache/fledge-ci/kernel)")
	}
	ents, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("FLEDGE_TEST_KERNEL_TREE=%s: want one lib/modules/VERSION, got %v (%v); run .ci/setup", root, ents, err)
	}
	return root, ents[0].Name()
}

// modules of the Debian tree the cases use, by path in it.
var fixtureModules = []string{
	"kernel/drivers/net/virtio_net.ko",
	"kernel/drivers/net/net_failover.ko",
	"kernel/net/core/failover.ko",
	"kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_pci.ko",
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
	"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
	"kernel/net/netfilter/xt_NFLOG.ko",
	"kernel/net/netfilter/x_tables.ko",
	"kernel/net/netfilter/nfnetlink_log.ko",
	"kernel/net/netfilter/nfnetlink.ko",
	"kernel/net/sched/act_mpls.ko",
	"kernel/drivers/vfio/vfio.ko",
	"kernel/drivers/vfio/vfio_iommu_type1.ko",
	"kernel/crypto/crc32c_generic.ko",
}

// fixture copies the fixture modules and the kernel package's own index
// files (modules.builtin, modules.builtin.modinfo) into a scratch tree,
// then lets edit change it; it returns the tree's root.
func fixture(t *testing.T, edit func(dir string)) string {
	t.Helper()
	src, version := debianTree(t)
	srcDir := filepath.Join(src, "lib", "modules", version)
	root := t.TempDir()
	dir := filepath.Join(root, "lib", "modules", version)
	for _, rel := range append([]string{"modules.builtin", "modules.builtin.modinfo"}, fixtureModules...) {
		data, err := os.ReadFile(filepath.Join(srcDir, rel))
		if err != nil {
			t.Fatalf("the Debian kernel tree lacks %s: %v", rel, err)
		}
		writeFile(t, filepath.Join(dir, rel), data)
	}
	if edit != nil {
		edit(dir)
	}
	return root
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// compress replaces dir/rel with rel+suffix, compressed by the named tool
// as the kernel's build compresses modules.
func compress(t *testing.T, dir, rel, suffix string) {
	t.Helper()
	args := map[string][]string{
		".xz":  {"xz", "--check=crc32", "--lzma2=dict=1MiB", "-f"},
		".zst": {"zstd", "-q", "-T0", "--rm", "-f"},
		".gz":  {"gzip", "-n", "-9", "-f"},
	}[suffix]
	cmd := exec.Command(args[0], append(args[1:], filepath.Join(dir, rel))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s (apt-get install xz-utils zstd gzip)", args[0], rel, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, rel+suffix)); err != nil {
		t.Fatal(err)
	}
}

const (
	virtioNet = "kernel/drivers/net/virtio_net.ko"
	failover  = "kernel/net/core/failover.ko"
)

func TestResolve(t *testing.T) {
	_, version := debianTree(t)
	for _, tc := range []struct {
		name  string
		edit  func(t *testing.T, dir string)
		names []string
		// want is the load order; builtin the skipped built-ins.
		want    []string
		builtin []string
		// neededBy checks some modules' NeededBy.
		neededBy map[string][]string
		// rels checks the tree paths some modules were read from.
		rels map[string]string
		// wantErr, when set, are texts the one-line error must hold.
		wantErr []string
	}{
		{
			name:     "no modules.dep: depends= of each module",
			names:    []string{"virtio-net"},
			want:     []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"},
			neededBy: map[string][]string{"virtio_ring": {"virtio", "virtio_net"}, "failover": {"net_failover"}, "virtio_net": nil},
		},
		{
			name: "modules.dep wins over depends=",
			edit: func(t *testing.T, dir string) {
				// failover needs crc32c_generic here, which its .modinfo
				// does not say: only modules.dep can bring it.
				writeFile(t, filepath.Join(dir, "modules.dep"), []byte(strings.Join([]string{
					virtioNet + ": kernel/drivers/net/net_failover.ko " + failover + " kernel/crypto/crc32c_generic.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
					"kernel/drivers/net/net_failover.ko: " + failover + " kernel/crypto/crc32c_generic.ko",
					failover + ": kernel/crypto/crc32c_generic.ko",
					"kernel/crypto/crc32c_generic.ko:",
					"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
					"kernel/drivers/virtio/virtio_ring.ko:",
				}, "\n")+"\n"))
			},
			names: []string{"virtio_net"},
			want:  []string{"crc32c_generic", "failover", "net_failover", "virtio_ring", "virtio", "virtio_net"},
		},
		{
			name:  "softdep pre from .modinfo",
			names: []string{"xt_NFLOG"},
			want:  []string{"nfnetlink", "nfnetlink_log", "x_tables", "xt_NFLOG"},
		},
		{
			name:  "softdep post from .modinfo; a softdep the tree lacks is skipped",
			names: []string{"vfio"},
			want:  []string{"vfio", "vfio_iommu_type1"},
		},
		{
			name: "softdep pre and post from modules.softdep",
			edit: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "modules.softdep"), []byte("# Soft dependencies\nsoftdep failover pre: crc32c_generic post: x_tables\n"))
			},
			names: []string{"failover"},
			want:  []string{"crc32c_generic", "failover", "x_tables"},
		},
		{
			name:    "built-ins are skipped, named or softdep",
			names:   []string{"crc32", "act_mpls"},
			want:    []string{"act_mpls"},
			builtin: []string{"crc32", "mpls_gso"},
		},
		{
			name:  "alias from the modules' .modinfo",
			names: []string{"pci:v00001AF4d00001041sv00001AF4sd00000001bc02sc00i00", "crypto-crc32c"},
			want:  []string{"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_pci", "crc32c_generic"},
		},
		{
			name: "alias from modules.alias",
			edit: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "modules.alias"), []byte("# Aliases extracted from modules themselves.\nalias net-pf-99 nfnetlink\n"))
			},
			names: []string{"net-pf-99"},
			want:  []string{"nfnetlink"},
		},
		{
			name: "compressed: .ko.xz, .ko.zst, .ko.gz",
			edit: func(t *testing.T, dir string) {
				compress(t, dir, virtioNet, ".xz")
				compress(t, dir, failover, ".zst")
				compress(t, dir, "kernel/drivers/virtio/virtio.ko", ".gz")
			},
			names: []string{"virtio_net"},
			want:  []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"},
			rels:  map[string]string{"virtio_net": virtioNet + ".xz", "failover": failover + ".zst", "virtio": "kernel/drivers/virtio/virtio.ko.gz"},
		},
		{
			name:    "missing module",
			names:   []string{"virtio_net", "no_such_driver"},
			wantErr: []string{"module no_such_driver is not in ", filepath.Join("lib", "modules", version)},
		},
		{
			name: "missing dependency",
			edit: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, failover)); err != nil {
					t.Fatal(err)
				}
			},
			names:   []string{"virtio_net"},
			wantErr: []string{"module failover (needed by net_failover) is not in "},
		},
		{
			name: "dependency loop",
			edit: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "modules.dep"), []byte(
					failover+": kernel/drivers/net/net_failover.ko\nkernel/drivers/net/net_failover.ko: "+failover+"\n"))
			},
			names:   []string{"net_failover"},
			wantErr: []string{"dependency loop net_failover -> failover -> net_failover"},
		},
		{
			name: "vermagic of another kernel",
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, failover)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				old := []byte("vermagic=" + version + " ")
				evil := []byte("vermagic=" + strings.Repeat("9", len(version)) + " ")
				if !bytes.Contains(data, old) {
					t.Fatalf("%s has no %q", p, old)
				}
				writeFile(t, p, bytes.Replace(data, old, evil, 1))
			},
			names:   []string{"virtio_net"},
			wantErr: []string{"failover (", `built for kernel "` + strings.Repeat("9", len(version)) + `", not ` + version},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fixture(t, func(dir string) {
				if tc.edit != nil {
					tc.edit(t, dir)
				}
			})
			tree, err := Open(root, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := tree.Resolve(tc.names)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("resolved %v, want an error", names(c))
				}
				if msg := err.Error(); strings.Contains(msg, "\n") {
					t.Errorf("error has several lines: %q", msg)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(c); !slices.Equal(got, tc.want) {
				t.Errorf("load order %v, want %v", got, tc.want)
			}
			if !slices.Equal(c.Builtin, tc.builtin) {
				t.Errorf("built-ins %v, want %v", c.Builtin, tc.builtin)
			}
			for _, m := range c.Modules {
				if want, ok := tc.neededBy[m.Name]; ok && !slices.Equal(m.NeededBy, want) {
					t.Errorf("%s needed by %v, want %v", m.Name, m.NeededBy, want)
				}
				if want, ok := tc.rels[m.Name]; ok && m.Rel != want {
					t.Errorf("%s read from %s, want %s", m.Name, m.Rel, want)
				}
				checkModule(t, version, m)
			}
		})
	}
}

// checkModule checks that m lands decompressed under its plain .ko name
// with the bytes of the Debian tree's module.
func checkModule(t *testing.T, version string, m *Module) {
	t.Helper()
	src, _ := debianTree(t)
	plain := stripCompression(m.Rel)
	if want := "/lib/modules/" + version + "/" + plain; m.Guest != want {
		t.Errorf("%s lands at %s, want %s", m.Name, m.Guest, want)
	}
	orig, err := os.ReadFile(filepath.Join(src, "lib", "modules", version, plain))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, orig) {
		t.Errorf("%s (from %s): %d bytes differ from the Debian module's %d", m.Name, m.Rel, len(m.Data), len(orig))
	}
}

func names(c *Closure) []string {
	var out []string
	for _, m := range c.Modules {
		out = append(out, m.Name)
	}
	return out
}

func TestOpenChoosesVersion(t *testing.T) {
	root := fixture(t, nil)
	_, version := debianTree(t)
	if tree, err := Open(root, ""); err != nil || tree.Version != version {
		t.Fatalf("one version: got %v, %v; want %s", tree, err, version)
	}
	if err := os.MkdirAll(filepath.Join(root, "lib", "modules", "9.9.9-test"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(root, "")
	if err == nil || !strings.Contains(err.Error(), "choose one with kernel.version") || !strings.Contains(err.Error(), "9.9.9-test") {
		t.Errorf("two versions, none chosen: got %v, want the versions listed and kernel.version named", err)
	}
	if tree, err := Open(root, version); err != nil || tree.Kernel() != filepath.Join(root, "boot", "vmlinuz-"+version) {
		t.Errorf("version chosen: got %v, %v", tree, err)
	}
	if _, err := Open(root, "1.0"); err == nil || !strings.Contains(err.Error(), `kernel.version "1.0"`) {
		t.Errorf("unknown version: got %v", err)
	}
	if _, err := Open(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "has no lib/modules/VERSION") {
		t.Errorf("no modules: got %v", err)
	}
}

// TestXzDictionaryBounded: a .ko.xz whose block header asks for a 4 GiB
// dictionary is refused before the decoder allocates it.
func TestXzDictionaryBounded(t *testing.T) {
	root := fixture(t, func(dir string) {
		compress(t, dir, failover, ".xz")
		p := filepath.Join(dir, failover+".xz")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// Stream header (12 bytes), then the block header: size, flags,
		// then the LZMA2 filter (0x21, 1 byte of properties: the
		// dictionary size).
		i := bytes.Index(data[12:], []byte{0x21, 0x01}) + 12
		if i < 12 || data[i+2] != 16 {
			t.Fatalf("no LZMA2 filter with a 1 MiB dictionary in the block header of %s", p)
		}
		data[i+2] = 40
		// The header's CRC32 covers it: make it right, so only the size
		// can be refused.
		hlen := (int(data[12]) + 1) * 4
		binary.LittleEndian.PutUint32(data[12+hlen-4:], crc32.ChecksumIEEE(data[12:12+hlen-4]))
		writeFile(t, p, data)
	})
	tree, err := Open(root, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tree.Resolve([]string{"failover"})
	if err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Errorf("got %v, want the dictionary refused", err)
	}
}

func TestModulesDep(t *testing.T) {
	tree, err := Open(fixture(t, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tree.Resolve([]string{"virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	// depmod's order: whatever loads last first.
	want := strings.Join([]string{
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		failover + ":",
		"kernel/drivers/net/net_failover.ko: " + failover,
		virtioNet + ": kernel/drivers/net/net_failover.ko " + failover + " kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	}, "\n") + "\n"
	if got := c.ModulesDep(); got != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, want)
	}
}
