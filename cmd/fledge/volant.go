package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/qemu"
	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/packer"
)

// What Volant puts on a plugin's kernel command line (volantvm/volant,
// internal/server/orchestrator/orchestrator.go buildKernelCmdline and
// appendKernelArgs; the keys are internal/pluginspec's).
const (
	// volantBase is buildKernelCmdline's fixed part; the ip= values follow.
	volantBase = "console=ttyS0 reboot=k panic=1 quiet loglevel=1 i8042.noaux i8042.nokbd pci=lastbus=0"
	// volantAPIPort is Volant's default API port (internal/server/config);
	// nothing answers there under fledge.
	volantAPIPort = "7777"
	// fledgeHint goes where Volant puts a VM's extra command line: printk
	// timestamps and the kernel's info lines, which the phases are
	// measured from and the health check's deadline starts at ("Run /init
	// as init process"). The later loglevel wins over quiet loglevel=1;
	// --append loglevel=1 after it restores Volant's quiet console.
	fledgeHint = "printk.time=1 loglevel=7"
	// kestrelMinHealth is the least time Kestrel gives a health check, and
	// fledge's when the manifest gives no timeout_ms.
	kestrelMinHealth = 2 * time.Minute
)

// encodeManifest encodes m as Volant's pluginspec.Encode does for the
// volant.manifest argument: JSON, gzip-compressed, in unpadded base64url.
func encodeManifest(m *recipe.Manifest) (string, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

// volantCmdline is the command line Volant boots m's plugin with, on QEMU's
// user network, with fledgeHint and extra where Volant puts a VM's extra
// command line, and the volant.* arguments sorted after them.
func volantCmdline(m *recipe.Manifest, extra string) (string, error) {
	enc, err := encodeManifest(m)
	if err != nil {
		return "", fmt.Errorf("encoding the manifest for volant.manifest: %w", err)
	}
	line := fmt.Sprintf("%s ip=%s::%s:%s:%s:eth0:off %s", volantBase, qemu.GuestAddr, qemu.GuestGW, qemu.GuestMask, hostname(m.Name), fledgeHint)
	if extra = strings.TrimSpace(extra); extra != "" {
		line += " " + extra
	}
	args := []string{
		"volant.api_host=" + qemu.GuestGW,
		"volant.api_port=" + volantAPIPort,
		"volant.manifest=" + enc,
		"volant.plugin=" + m.Name,
		"volant.runtime=" + m.Runtime,
	}
	sort.Strings(args)
	return line + " " + strings.Join(args, " "), nil
}

// hostname is Volant's sanitizeHostname: lower-case letters, digits and
// dashes of name, or "vm".
func hostname(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "vm"
	}
	return b.String()
}

// healthCheck is the check Kestrel runs, from the host: an HTTP GET of
// base_url + health_check.endpoint (resolved as Kestrel resolves it),
// through a free port of the host's loopback forwarded to base_url's port.
func healthCheck(m *recipe.Manifest, file string) (*qemu.Health, error) {
	hc := m.HealthCheck
	if hc == nil || strings.TrimSpace(hc.Endpoint) == "" {
		return nil, fmt.Errorf("manifest %s: no health_check.endpoint, so there is nothing to judge the plugin's health by; add [health_check] endpoint = \"/health\" (Kestrel calls a plugin without one healthy at once)", file)
	}
	base, err := url.Parse(strings.TrimSpace(m.Workload.BaseURL))
	if err != nil || base.Scheme != "http" || base.Hostname() == "" {
		return nil, fmt.Errorf("manifest %s: workload.base_url %q: expected an http:// URL such as http://127.0.0.1:8080", file, m.Workload.BaseURL)
	}
	port := 80
	if p := base.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("manifest %s: workload.base_url %q: port %q is not a TCP port", file, m.Workload.BaseURL, p)
		}
	}
	target := base.ResolveReference(&url.URL{Path: strings.TrimSpace(hc.Endpoint)})
	timeout := time.Duration(hc.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = kestrelMinHealth
	}
	hostPort, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("a free port on 127.0.0.1 to forward to the guest's port %d: %w", port, err)
	}
	return &qemu.Health{
		URL: target.String(), Host: base.Host, RequestURI: target.RequestURI(),
		GuestPort: port, HostPort: hostPort, Timeout: timeout,
	}, nil
}

// freePort is a TCP port of 127.0.0.1 that nothing listened on a moment
// ago; QEMU binds it for the forward.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// readManifest reads a NAME.manifest.json or a manifest.toml (boot and
// check -m), saying its warnings on stderr.
func readManifest(cmd *cobra.Command, file string) (*recipe.Manifest, error) {
	m, warnings, err := recipe.ReadManifest(file)
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: warning:", w)
	}
	return m, err
}

// completeBootManifest completes m as a build does: for a recipe, with
// the facts of the archive packed at initrd; for an artifact, with the
// artifact's. sum is the archive's sha256 when it is known already ("":
// read initrd for it). A checksum the manifest gives that is not the
// artifact's is reported: Volant would refuse the download.
func completeBootManifest(cmd *cobra.Command, m *recipe.Manifest, t *target, file, initrd, sum string) error {
	if sum == "" {
		var err error
		if sum, err = fileSHA256(initrd); err != nil {
			return err
		}
	}
	facts := recipe.ManifestFacts{SHA256: sum}
	if r := t.Recipe; r != nil {
		facts.Name, facts.Entrypoint, facts.Artifact = filepath.Base(r.Dir), recipe.DefaultEntrypoint(r), "plugin.cpio.gz"
	} else {
		base := filepath.Base(t.Artifact)
		facts.Name, facts.Entrypoint, facts.Artifact = strings.SplitN(base, ".", 2)[0], []string{"/init"}, base
		if m.Initramfs != nil && m.Initramfs.Checksum != "" && m.Initramfs.Checksum != "sha256:"+sum {
			fmt.Fprintf(cmd.ErrOrStderr(), "fledge: warning: %s gives initramfs.checksum %s, but %s is sha256:%s; Volant would refuse the download (rebuild, or boot the artifact the manifest was written for)\n", file, m.Initramfs.Checksum, t.Artifact, sum)
		}
	}
	m.Complete(facts)
	return nil
}

// fileSHA256 is the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// withBase writes base, padded with zeros to a 4-byte boundary (the
// kernel's unpacker skips them between archives), followed by the image,
// to dst: the kernel unpacks the image over the base, as Volant's kernel
// unpacks a plugin's archive over its built-in initramfs.
func withBase(base, image, dst string) error {
	a, err := packer.OpenArtifact(base, "")
	if err != nil {
		return fmt.Errorf("--base-initramfs: %w", err)
	}
	a.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	n, err := appendFile(out, base)
	if err != nil {
		return fmt.Errorf("--base-initramfs: %w", err)
	}
	if _, err := out.Write(make([]byte, (4-n%4)%4)); err != nil {
		return err
	}
	if _, err := appendFile(out, image); err != nil {
		return err
	}
	return out.Close()
}

func appendFile(w io.Writer, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}
