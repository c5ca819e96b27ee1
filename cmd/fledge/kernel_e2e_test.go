package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 18's acceptance: a default-mode image booted on Debian's own kernel
// (virtio_net a module, no IP_PNP) gets its network from [kernel] modules
// and the init's ip= handling, and reaches a server on the host's loopback
// through QEMU's user network.

const (
	netAppend   = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
	netGreeting = "hello from the host over virtio-net"
)

// netAgent is a stand-in agent that reports the guest's network and
// fetches /greeting from the host's loopback (10.0.2.2 on user networking).
// No wget -T: BusyBox 1.35 (Debian's busybox-static) segfaults with it.
const netAgent = `#!/bin/sh
echo "net-agent: up"
ip -4 addr show dev eth0 2>&1 | while read -r key addr rest; do
	[ "$key" = inet ] && echo "net-agent: inet $addr"
done
ip route 2>&1 | while read -r route; do echo "net-agent: route $route"; done
while read -r mod rest; do echo "net-agent: module $mod"; done </proc/modules
echo "net-agent: fetched $(wget -q -O - http://10.0.2.2:%d/greeting 2>&1)"
echo "net-agent: done"
poweroff -f
`

// kernelTree is the unpacked Debian kernel package .ci/setup caches.
func kernelTree(t *testing.T) string {
	t.Helper()
	k := os.Getenv("FLEDGE_TEST_KERNEL_TREE")
	if k == "" {
		t.Fatal("FLEDGE_TEST_KERNEL_TREE is not set: run .ci/setup, then .ci/test (or export FLEDGE_TEST_KERNEL_TREE=/var/cache/fledge-ci/kernel)")
	}
	if _, err := os.Stat(filepath.Join(k, "lib", "modules")); err != nil {
		t.Fatalf("FLEDGE_TEST_KERNEL_TREE: %v; run .ci/setup to unpack the test kernel's package", err)
	}
	return k
}

// greetingServer serves netGreeting on the host's loopback and returns
// its port.
func greetingServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/greeting" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, netGreeting)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// netRecipe is examples/default with the network agent and kernel, a
// [kernel] section (nil: none).
func netRecipe(t *testing.T, port int, kernel []string) string {
	t.Helper()
	dir := copyExample(t, "default")
	if err := os.WriteFile(filepath.Join(dir, "kestrel"), fmt.Appendf(nil, netAgent, port), 0o755); err != nil {
		t.Fatal(err)
	}
	if kernel != nil {
		f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\n[kernel]\n")
		for _, line := range kernel {
			fmt.Fprintln(f, line)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBootKernelModulesBringUpNetwork: `fledge boot` of the recipe takes
// the kernel from its [kernel] tree (no --kernel, no $FLEDGE_KERNEL), the
// init loads virtio_pci and virtio_net with what they need and configures
// eth0 from ip=, and the guest fetches a file from the host.
func TestBootKernelModulesBringUpNetwork(t *testing.T) {
	t.Parallel()
	port := greetingServer(t)
	dir := netRecipe(t, port, []string{
		fmt.Sprintf("path = %q", kernelTree(t)),
		`modules = ["virtio_pci", "virtio-net"]`,
	})
	r := mustFledge(t, dir, []string{"FLEDGE_KERNEL="}, "boot", "-c", "fledge.toml", "--nic",
		"--append", netAppend, "--expect", "^net-agent: done$", "--timeout", "3m")
	out := []byte(r.stdout)
	for _, line := range []string{
		"net-agent: inet 10.0.2.15/24",
		"net-agent: route default via 10.0.2.2 dev eth0",
		"net-agent: module virtio_net",
		"net-agent: module virtio_pci",
		"net-agent: module failover",
		"net-agent: fetched " + netGreeting,
	} {
		if !hasLine(out, line) {
			t.Errorf("console lacks %q", line)
		}
	}
	if strings.Contains(r.stdout, "fledge-init:") {
		t.Error("the init reported a failure")
	}
	if t.Failed() {
		t.Logf("console:\n%s", r.stdout)
	}
}

// TestBootWithoutModulesSaysInterfaceMissing: the same image without
// [kernel] on the same kernel has no eth0: the init says so in one line
// and the agent still starts.
func TestBootWithoutModulesSaysInterfaceMissing(t *testing.T) {
	t.Parallel()
	dir := netRecipe(t, greetingServer(t), nil)
	r := mustFledge(t, dir, nil, "boot", "-c", "fledge.toml", "--kernel", testKernel(t), "--nic",
		"--append", netAppend, "--expect", "^net-agent: done$", "--timeout", "3m")
	var initLines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "fledge-init:") {
			initLines = append(initLines, strings.TrimRight(l, "\r"))
		}
	}
	want := "fledge-init: " + netAppend + ": no interface eth0; is its driver a module? list it in [kernel] modules: No such device"
	if len(initLines) != 1 || initLines[0] != want {
		t.Errorf("init lines %q, want exactly %q", initLines, want)
	}
	if !hasLine([]byte(r.stdout), "net-agent: up") {
		t.Errorf("the agent did not start:\n%s", r.stdout)
	}
}

// TestKernelModulesInspected: the modules layer shows in ls with its
// provenance, why names the module that needed a dependency, the image
// has the load list and a modules.dep; a module the tree lacks fails the
// build in one line naming it and the tree.
func TestKernelModulesInspected(t *testing.T) {
	t.Parallel()
	tree := kernelTree(t)
	ents, err := os.ReadDir(filepath.Join(tree, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s/lib/modules: want one version, got %v (%v)", tree, ents, err)
	}
	version := ents[0].Name()
	dir := netRecipe(t, 1, []string{fmt.Sprintf("path = %q", tree), `modules = ["virtio_net"]`})
	failover := "/lib/modules/" + version + "/kernel/net/core/failover.ko"
	layers := map[string]string{}
	for _, r := range listRows(t, dir, "fledge.toml") {
		layers[r.Path] = r.Layer
	}
	for _, p := range []string{failover, "/lib/modules/" + version + "/modules.dep", "/etc/fledge/modules"} {
		if layers[p] != "modules" {
			t.Errorf("ls: %s from layer %q, want modules", p, layers[p])
		}
	}
	why := mustFledge(t, dir, nil, "why", failover).stdout
	if !strings.Contains(why, "provided by layer modules") || !strings.Contains(why, "needed by net_failover") {
		t.Errorf("why %s does not name the layer and net_failover:\n%s", failover, why)
	}

	bad := netRecipe(t, 1, []string{fmt.Sprintf("path = %q", tree), `modules = ["virtio_net", "no-such-driver"]`})
	r := fledge(t, bad, nil, "build", "-c", "fledge.toml", "-o", filepath.Join(t.TempDir(), "x"))
	msg := strings.TrimSpace(r.stderr)
	modDir := filepath.Join(tree, "lib", "modules", version)
	if r.code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, "module no-such-driver is not in "+modDir) {
		t.Errorf("build with a missing module: exit %d, stderr %q; want one line naming no-such-driver and %s", r.code, msg, modDir)
	}
}

// TestBootKernelTreeWithoutImage: a [kernel] tree without
// boot/vmlinuz-VERSION and no --kernel: boot says which file it looked for
// instead of booting some other kernel the modules do not fit.
func TestBootKernelTreeWithoutImage(t *testing.T) {
	t.Parallel()
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "lib", "modules", "6.1.0-test"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := netRecipe(t, 1, []string{fmt.Sprintf("path = %q", tree)})
	r := fledge(t, dir, []string{"FLEDGE_KERNEL="}, "boot", "-c", "fledge.toml")
	if r.code != 1 || !strings.Contains(r.stderr, "has no regular file boot/vmlinuz-6.1.0-test") {
		t.Errorf("exit %d, stderr %q; want the missing boot/vmlinuz-6.1.0-test named", r.code, r.stderr)
	}
}

// customModulesInit is a custom init using the two lines docs/kernel.md
// shows: BusyBox modprobe by name (modules.dep of the image), then the
// load list in order (insmod says "File exists" for what is loaded).
const customModulesInit = `#!/bin/sh
mount -t proc proc /proc
modprobe -a virtio_pci virtio_net
for m in virtio_pci virtio_net; do
	grep -q "^$m " /proc/modules && echo "custom-init: modprobe loaded $m"
done
while read -r m; do insmod "$m"; done < /etc/fledge/modules
while read -r mod rest; do echo "custom-init: module $mod"; done </proc/modules
ip link show eth0 >/dev/null && echo "custom-init: eth0 present"
echo "custom-init: done"
poweroff -f
`

// TestBootCustomInitLoadsModules: in custom mode the image's modules.dep
// serves BusyBox modprobe, and /etc/fledge/modules BusyBox insmod.
func TestBootCustomInitLoadsModules(t *testing.T) {
	t.Parallel()
	dir := copyExample(t, "custom")
	if err := os.WriteFile(filepath.Join(dir, "my-init"), []byte(customModulesInit), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[kernel]\npath = %q\nmodules = [\"virtio_pci\", \"virtio_net\"]\n", kernelTree(t))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustFledge(t, dir, []string{"FLEDGE_KERNEL="}, "boot", "-c", "fledge.toml", "--nic",
		"--expect", "^custom-init: done$", "--timeout", "3m")
	for _, line := range []string{"custom-init: modprobe loaded virtio_pci", "custom-init: modprobe loaded virtio_net", "custom-init: module virtio_net", "custom-init: module virtio_pci", "custom-init: eth0 present"} {
		if !hasLine([]byte(r.stdout), line) {
			t.Errorf("console lacks %q:\n%s", line, r.stdout)
		}
	}
}
