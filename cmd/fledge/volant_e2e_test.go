package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 19: fledge boot -m boots a plugin as Volant does and judges its
// health check.

// decodeVolantManifest follows the encoding volantvm/volant documents for
// volant.manifest (internal/pluginspec Encode/Decode): JSON, gzip
// compressed, in unpadded base64url.
func decodeVolantManifest(t *testing.T, value string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		t.Fatalf("volant.manifest is not unpadded base64url: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("volant.manifest is not gzip-compressed: %v", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("volant.manifest does not hold JSON: %v", err)
	}
	return m
}

// httpExample is a copy of examples/http whose [kernel] names the test
// kernel tree, and that tree's kernel.
func httpExample(t *testing.T) (dir, kernel string) {
	t.Helper()
	tree := kernelTree(t)
	dir = copyExample(t, "http")
	recipe := filepath.Join(dir, "fledge.toml")
	b, err := os.ReadFile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	const examplePath = `path = "/var/cache/fledge-ci/kernel"`
	if !bytes.Contains(b, []byte(examplePath)) {
		t.Fatalf("examples/http/fledge.toml lacks %s", examplePath)
	}
	b = bytes.Replace(b, []byte(examplePath), fmt.Appendf(nil, "path = %q", tree), 1)
	if err := os.WriteFile(recipe, b, 0o644); err != nil {
		t.Fatal(err)
	}
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		t.Fatalf("%s/boot: want one vmlinuz-*, found %v", tree, kernels)
	}
	return dir, kernels[0]
}

// TestBootDryRunVolantCmdline: the command line is Volant's, in its
// order; volant.manifest decodes, the way pluginspec documents it, to the
// manifest the build wrote, non-ASCII text and a large env included; the
// VM's size comes from resources; base_url's port is forwarded. Such a
// manifest makes a command line longer than the kernel keeps, which the
// dry run warns about and a boot refuses.
func TestBootDryRunVolantCmdline(t *testing.T) {
	t.Parallel()
	dir, kernel := httpExample(t)
	var env strings.Builder
	env.WriteString("\n[workload.env]\nGREETING = \"grüß dich — 你好 ✓\"\n")
	for i := range 100 {
		fmt.Fprintf(&env, "VAR_%02d = \"%x\"\n", i, sha256.Sum256([]byte{byte(i)}))
	}
	mf, err := os.ReadFile(filepath.Join(dir, "manifest.toml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.Replace(string(mf), "cpu_cores = 1\nmemory_mb = 256", "cpu_cores = 2\nmemory_mb = 300", 1)
	manifest = strings.Replace(manifest, "\n[health_check]", env.String()+"\n[labels]\nowner = \"Zoë Ñandú\"\n"+"\n[health_check]", 1)
	writeFile(t, filepath.Join(dir, "manifest.toml"), manifest, 0o644)
	out := filepath.Join(t.TempDir(), "http")
	mustFledge(t, dir, nil, "build", "-c", "fledge.toml", "-o", out)
	validateManifest(t, compileManifestSchema(t), out+".manifest.json", sha256File(t, out+".cpio.gz"))

	r := mustFledge(t, dir, nil, "boot", out+".cpio.gz", "-m", out+".manifest.json", "--kernel", kernel, "--append", "extra.arg=1", "--dry-run")
	line := regexp.MustCompile(`-append '([^']*)'`).FindStringSubmatch(r.stdout)
	if line == nil {
		t.Fatalf("dry run printed no -append '…':\n%s", r.stdout)
	}
	words := strings.Fields(line[1])
	want := strings.Fields("console=ttyS0 reboot=k panic=1 quiet loglevel=1 i8042.noaux i8042.nokbd pci=lastbus=0 ip=10.0.2.15::10.0.2.2:255.255.255.0:http-hello:eth0:off printk.time=1 loglevel=7 extra.arg=1")
	if len(words) != len(want)+5 || !reflect.DeepEqual(words[:len(want)], want) {
		t.Fatalf("command line %q; want %q then the five volant.* arguments", line[1], want)
	}
	var keys []string
	var encoded string
	for _, w := range words[len(want):] {
		k, v, _ := strings.Cut(w, "=")
		keys = append(keys, k)
		if k == "volant.manifest" {
			encoded = v
		}
	}
	if strings.Join(keys, " ") != "volant.api_host volant.api_port volant.manifest volant.plugin volant.runtime" {
		t.Errorf("volant arguments %q; want them sorted as Volant's appendKernelArgs sorts them", keys)
	}
	b, err := os.ReadFile(out + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var written map[string]any
	if err := json.Unmarshal(b, &written); err != nil {
		t.Fatal(err)
	}
	if got := decodeVolantManifest(t, encoded); !reflect.DeepEqual(got, written) {
		t.Errorf("volant.manifest decodes to\n%v\nwant the manifest the build wrote\n%v", got, written)
	}
	for _, arg := range []string{"-smp 2", "-m 300", "hostfwd=tcp:127.0.0.1:", "-10.0.2.15:8080", "virtio-net-pci"} {
		if !strings.Contains(r.stdout, arg) {
			t.Errorf("QEMU command lacks %q:\n%s", arg, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "more than the 2047 an x86 kernel keeps") {
		t.Errorf("dry run with a %d-byte command line: stderr %q; want a warning that the kernel cuts it", len(line[1]), r.stderr)
	}
	boot := fledge(t, dir, nil, "boot", out+".cpio.gz", "-m", out+".manifest.json", "--kernel", kernel)
	if boot.code != 1 || !strings.Contains(boot.stderr, "COMMAND_LINE_SIZE") || strings.Contains(boot.stdout, "Linux version") {
		t.Errorf("boot with a command line too long: exit %d, stderr %q; want it refused before QEMU starts", boot.code, boot.stderr)
	}
}

// TestBootVolantHTTPExample: examples/http booted Volant's way answers its
// health check; --json reports ok with the five phases, healthy_s among
// them, and --keep-running leaves it serving at the printed address until
// Ctrl-C.
func TestBootVolantHTTPExample(t *testing.T) {
	t.Parallel()
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	dir, kernel := httpExample(t)
	out := filepath.Join(t.TempDir(), "http")
	mustFledge(t, dir, nil, "build", "-c", "fledge.toml", "-o", out)
	validateManifest(t, compileManifestSchema(t), out+".manifest.json", sha256File(t, out+".cpio.gz"))

	cmd := exec.Command(fledgeBin, "boot", out+".cpio.gz", "-m", out+".manifest.json", "--kernel", kernel, "--json", "--keep-running", "--timeout", "3m")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	serving := &watch{text: "Ctrl-C stops it", seen: make(chan struct{})}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, serving
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-serving.seen:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("no serving line within 3 minutes:\n%s", serving.String())
	}
	addr := regexp.MustCompile(`at http://(127\.0\.0\.1:\d+) `).FindStringSubmatch(serving.String())
	var page string
	if addr != nil {
		resp, err := http.Get("http://" + addr[1] + "/index.html")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page = string(b)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if !strings.Contains(page, "Hello from a fledge plugin.") {
		t.Errorf("the kept-running plugin at %v served %q; want examples/http/www/index.html", addr, page)
	}
	rep := oneBootReport(t, stdout.String())
	if err != nil || rep.Verdict != "ok" || rep.Phases.Healthy == nil || *rep.Phases.Healthy <= 0 || *rep.Phases.Healthy > rep.Elapsed {
		t.Fatalf("exit %v, report %+v; want ok with healthy_s within the boot\nstderr:\n%s", err, rep, serving.String())
	}
	for _, want := range []string{"http://127.0.0.1:8080/healthz answered 200 OK", "kept running until stopped"} {
		if !strings.Contains(rep.Reason, want) {
			t.Errorf("reason %q lacks %q", rep.Reason, want)
		}
	}
	if rep.Phases.Kernel == nil || rep.Phases.Init == nil || !strings.Contains(rep.Cmdline, " volant.manifest=") {
		t.Errorf("phases %+v, cmdline %q; want the kernel's phases measured and the Volant command line", rep.Phases, rep.Cmdline)
	}
	for _, line := range []string{"http-agent: volant.manifest present", "http-serve: httpd on port 8080"} {
		if !strings.Contains(serving.String(), line) {
			t.Errorf("console lacks %q", line)
		}
	}
}

// TestBootVolantUnhealthy: the ways a plugin fails its health check, each
// booted from a copy of examples/http: a workload that never listens
// (booted as a recipe with its manifest.toml), one that answers 500 with a
// body from /bin/extra, which only a --base-initramfs archive provides
// (booted as an artifact with its manifest.json), and an agent that exits,
// so the kernel panics.
func TestBootVolantUnhealthy(t *testing.T) {
	t.Parallel()
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	t.Run("never listens", func(t *testing.T) {
		t.Parallel()
		dir, _ := httpExample(t)
		writeFile(t, filepath.Join(dir, "serve"), "#!/bin/sh\necho never-listens\nexec sleep 100000\n", 0o755)
		replaceIn(t, filepath.Join(dir, "manifest.toml"), "timeout_ms = 20000", "timeout_ms = 3000")
		r := fledge(t, dir, []string{"FLEDGE_KERNEL="}, "boot", "-c", "fledge.toml", "-m", "manifest.toml", "--timeout", "3m")
		want := "no answer within 3s (health_check.timeout_ms, counted from the kernel's hand-over to /init) from http://127.0.0.1:8080/healthz"
		if r.code != exitBootFailed || !strings.Contains(r.stderr, "boot failed: "+want) || !strings.Contains(r.stdout, "never-listens") {
			t.Errorf("exit %d, stderr %q; want failed: %s", r.code, r.stderr, want)
		}
	})
	t.Run("answers 500", func(t *testing.T) {
		t.Parallel()
		dir, kernel := httpExample(t)
		cgi := filepath.Join(dir, "www", "cgi-bin")
		if err := os.MkdirAll(cgi, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(cgi, "healthz"), "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n'\necho \"not ready: $(/bin/extra)\"\necho second line\n", 0o755)
		replaceIn(t, filepath.Join(dir, "manifest.toml"), `endpoint = "/healthz"`, `endpoint = "/cgi-bin/healthz"`)
		// Long enough for httpd to come up on a loaded machine.
		replaceIn(t, filepath.Join(dir, "manifest.toml"), "timeout_ms = 20000", "timeout_ms = 10000")
		out := filepath.Join(t.TempDir(), "http")
		mustFledge(t, dir, nil, "build", "-c", "fledge.toml", "-o", out)
		if archiveNames(t, out+".cpio.gz")["bin/extra"] {
			t.Fatal("the plugin's image has /bin/extra; the test needs it from the base archive alone")
		}
		base := baseArchive(t, map[string]string{"bin/extra": "#!/bin/sh\necho extra from the base archive\n"})
		r := fledge(t, dir, nil, "boot", out+".cpio.gz", "-m", out+".manifest.json", "--kernel", kernel, "--base-initramfs", base, "--timeout", "3m")
		want := `it answered 500 Internal Server Error, body "not ready: extra from the base archive"`
		if r.code != exitBootFailed || !strings.Contains(r.stderr, "no healthy answer within 10s") || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr %q; want failed: %s", r.code, r.stderr, want)
		}
	})
	t.Run("init panics", func(t *testing.T) {
		t.Parallel()
		dir, _ := httpExample(t)
		writeFile(t, filepath.Join(dir, "kestrel"), "#!/bin/sh\necho agent-gives-up\nexit 3\n", 0o755)
		r := fledge(t, dir, []string{"FLEDGE_KERNEL="}, "boot", "-c", "fledge.toml", "-m", "manifest.toml", "--json", "--timeout", "3m")
		rep := oneBootReport(t, r.stdout)
		if r.code != exitBootFailed || rep.Verdict != "failed" || !strings.Contains(rep.Reason, "Kernel panic - not syncing: Attempted to kill init!") || rep.Phases.Healthy != nil {
			t.Errorf("exit %d, report %+v; want failed with the panic line, no healthy_s", r.code, rep)
		}
	})
}

// Flags that make no sense with (or without) a manifest are refused before
// anything is packed, in one line naming them.
func TestBootManifestFlagErrors(t *testing.T) {
	t.Parallel()
	dir, kernel := httpExample(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--keep-running"}, "--keep-running without -m"},
		{[]string{"-m", "manifest.toml", "--grace", "5s"}, "-m manifest.toml with --grace or --expect-poweroff"},
		{[]string{"-m", "manifest.toml", "--expect-poweroff"}, "-m manifest.toml with --grace or --expect-poweroff"},
	} {
		r := fledge(t, dir, nil, append([]string{"boot", "-c", "fledge.toml", "--kernel", kernel}, tt.args...)...)
		msg := strings.TrimSpace(r.stderr)
		if r.code != 1 || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
			t.Errorf("boot %v: exit %d, stderr %q; want one line naming %q", tt.args, r.code, msg, tt.want)
		}
	}
}

// baseArchive makes a gzip-compressed newc archive of executable files
// with GNU cpio, independent of fledge.
func baseArchive(t *testing.T, files map[string]string) string {
	t.Helper()
	needTool(t, "cpio", "cpio")
	root := t.TempDir()
	var names []string
	for name, content := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, name), content, 0o755)
		// The kernel's unpacker creates no parent folders: list them first.
		names = append(names, filepath.Dir(name), name)
	}
	out := filepath.Join(t.TempDir(), "base.cpio.gz")
	sh := exec.Command("sh", "-c", "cpio -o -H newc --quiet --owner=0:0 | gzip -n > "+out)
	sh.Dir, sh.Stdin = root, strings.NewReader(strings.Join(names, "\n")+"\n")
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, b)
	}
	return out
}
