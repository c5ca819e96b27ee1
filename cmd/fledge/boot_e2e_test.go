package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/qemu"
)

// Boot tests: each example is built by the real binary and booted under
// QEMU, judged the same way `fledge boot` judges (issue 2's acceptance).

func TestBootDefaultExample(t *testing.T) {
	t.Parallel()
	res := bootImage(t, buildExample(t, "default"), `^example-agent: done$`)
	want := []string{
		"example-agent: pid=1",
		"example-agent: mount /proc proc",
		"example-agent: mount /sys sysfs",
		"example-agent: mount /dev devtmpfs",
		"example-agent: mount /tmp tmpfs",
		"example-agent: mount /run tmpfs",
		"hello from the mapped app",
	}
	for _, line := range want {
		if !hasLine(res.Output, line) {
			t.Errorf("console lacks %q: the C init must exec the agent as PID 1 with its mounts, and the mapped app must run", line)
		}
	}
}

func TestBootCustomExample(t *testing.T) {
	t.Parallel()
	artifact := buildExample(t, "custom")
	if names := archiveNames(t, artifact); names["bin/kestrel"] || !names["init"] {
		t.Errorf("custom-mode image: /init present %v, /bin/kestrel present %v; want /init only", names["init"], names["bin/kestrel"])
	}
	res := bootImage(t, artifact, `^example-custom-init: done$`)
	for _, line := range []string{"example-custom-init: pid=1", "example-custom-init: no kestrel"} {
		if !hasLine(res.Output, line) {
			t.Errorf("console lacks %q: the custom init must run as PID 1 without Kestrel", line)
		}
	}
}

func TestBootNoneExample(t *testing.T) {
	t.Parallel()
	res := bootImage(t, buildExample(t, "none"), `^example-none-init: done$`)
	if !hasLine(res.Output, "example-none-init: pid=1") {
		t.Errorf("console lacks \"example-none-init: pid=1\": the mapped /init must run as PID 1\nconsole:\n%s", res.Output)
	}
}

func TestBootWithoutKestrelPowersOff(t *testing.T) {
	t.Parallel()
	artifact := withoutEntry(t, buildExample(t, "default"), "bin/kestrel")
	// OK means the line appeared, no panic did, and the guest powered off
	// by itself before the timeout.
	res := bootImage(t, artifact, `^fledge-init: exec /bin/kestrel: No such file or directory$`)
	if bytes.Contains(res.Output, []byte("example-agent:")) {
		t.Error("the agent ran although /bin/kestrel was removed from the image")
	}
}

// The earlier init lost 5 s probing for disks; ours waits for nothing, so
// the agent comes up as soon after the kernel hands over as a custom init
// does. The time is counted from the kernel's "Run /init" line, so the noise
// of kernel boot on a busy machine stays out; rounds alternate and the best
// of each mode is compared. Not parallel, so these boots do not compete.
func TestBootDefaultReachesAgentAsFastAsCustom(t *testing.T) {
	custom := buildExample(t, "custom")
	def := buildExample(t, "default")
	var bestCustom, bestDefault time.Duration
	for round := 0; round < 2; round++ {
		c := initLatency(t, custom, "example-custom-init: pid=1")
		d := initLatency(t, def, "example-agent: pid=1")
		t.Logf("round %d: after the kernel ran /init, custom init up in %s, agent up in %s", round+1, c, d)
		bestCustom, bestDefault = best(bestCustom, c), best(bestDefault, d)
	}
	const slack = 2 * time.Second
	if bestDefault > bestCustom+slack {
		t.Errorf("default mode reached the agent %s after the kernel ran /init, custom mode its init after %s; want at most %s more: does the C init wait for something?",
			bestDefault, bestCustom, slack)
	}
}

// initLatency boots artifact and returns the time from the kernel's
// "Run /init" line to the line ready.
func initLatency(t *testing.T, artifact, ready string) time.Duration {
	t.Helper()
	tl := &timeline{marks: []string{"Run /init as init process", ready}}
	res := bootImageWith(t, artifact, "^"+regexp.QuoteMeta(ready)+"$", tl)
	handover, up := tl.seen[0], tl.seen[1]
	if handover.IsZero() || up.IsZero() {
		t.Fatalf("console of %s lacks the kernel's \"Run /init\" line or %q:\n%s", filepath.Base(artifact), ready, res.Output)
	}
	return up.Sub(handover)
}

func best(cur, d time.Duration) time.Duration {
	if cur == 0 || d < cur {
		return d
	}
	return cur
}

// timeline notes when each mark first appears in a console line.
type timeline struct {
	marks   []string
	seen    []time.Time
	partial []byte
}

func (tl *timeline) Write(p []byte) (int, error) {
	now := time.Now()
	if tl.seen == nil {
		tl.seen = make([]time.Time, len(tl.marks))
	}
	tl.partial = append(tl.partial, p...)
	for {
		line, rest, ok := bytes.Cut(tl.partial, []byte("\n"))
		if !ok {
			break
		}
		for i, m := range tl.marks {
			if tl.seen[i].IsZero() && bytes.Contains(line, []byte(m)) {
				tl.seen[i] = now
			}
		}
		tl.partial = rest
	}
	return len(p), nil
}

// buildExample builds a copy of examples/NAME and returns the artifact.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	dir := copyExample(t, name)
	out := filepath.Join(t.TempDir(), name)
	mustFledge(t, dir, nil, "build", "-c", filepath.Join(dir, "fledge.toml"), "-o", out)
	return out + ".cpio.gz"
}

// bootImage boots artifact with the test kernel and fails the test unless
// the boot succeeds with a console line matching expect.
func bootImage(t *testing.T, artifact, expect string) qemu.Result {
	t.Helper()
	return bootImageWith(t, artifact, expect, nil)
}

// bootImageWith is bootImage that also streams the console to live.
func bootImageWith(t *testing.T, artifact, expect string, live io.Writer) qemu.Result {
	t.Helper()
	res, err := qemu.Boot(context.Background(), qemu.Config{
		Kernel:  testKernel(t),
		Initrd:  artifact,
		Expect:  regexp.MustCompile(expect),
		Timeout: 2 * time.Minute,
		Console: live,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("boot of %s: %s\nconsole:\n%s", filepath.Base(artifact), res.Reason, res.Output)
	}
	return res
}

// testKernel is the kernel .ci/setup unpacks.
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

// hasLine reports whether the console shows line, whole.
func hasLine(out []byte, line string) bool {
	// The kernel's messages reach the serial console as the guest's
	// programs write to it, so one can land inside a program's line
	// ("example-none-[    1.92] clocksource: …\ninit: pid=1"); each
	// carries its printk time (printk.time=1), which tells it apart.
	out = printkRecord.ReplaceAll(out, nil)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimRight(l, "\r") == line {
			return true
		}
	}
	return false
}

// printkRecord is one kernel message on the console, with its time.
var printkRecord = regexp.MustCompile(`\[ *[0-9]+\.[0-9]{6}\] [^\n]*\n`)

// archiveNames lists a .cpio.gz with GNU cpio, independent of fledge.
func archiveNames(t *testing.T, artifact string) map[string]bool {
	t.Helper()
	needTool(t, "cpio", "cpio")
	out := gnuCPIO(t, artifact, "", "-it", "--quiet")
	names := map[string]bool{}
	for _, n := range strings.Split(strings.TrimSpace(out), "\n") {
		names[strings.TrimPrefix(n, "./")] = true
	}
	return names
}

// withoutEntry remakes a .cpio.gz without one entry, with GNU cpio: the
// archive is unpacked (as root, so device nodes survive), the entry removed,
// and the tree packed again in newc with gzip.
func withoutEntry(t *testing.T, artifact, name string) string {
	t.Helper()
	needTool(t, "cpio", "cpio")
	needTool(t, "gzip", "gzip")
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	gnuCPIO(t, artifact, tree, "-idm", "--quiet", "--no-absolute-filenames")
	if err := os.Remove(filepath.Join(tree, name)); err != nil {
		t.Fatalf("removing %s from the unpacked image: %v", name, err)
	}
	out := filepath.Join(t.TempDir(), "without.cpio.gz")
	pack := exec.Command("sh", "-c", `find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n > "$1"`, "sh", out)
	pack.Dir = tree
	if msg, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("repacking with cpio: %v: %s", err, msg)
	}
	return out
}

// gnuCPIO feeds the decompressed artifact to cpio ARGS in dir.
func gnuCPIO(t *testing.T, artifact, dir string, args ...string) string {
	t.Helper()
	f, err := os.Open(artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := exec.Command("gzip", "-dc")
	gz.Stdin = f
	stream, err := gz.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cpio := exec.Command("cpio", args...)
	cpio.Dir = dir
	cpio.Stdin = stream
	var out, stderr bytes.Buffer
	cpio.Stdout, cpio.Stderr = &out, &stderr
	if err := gz.Start(); err != nil {
		t.Fatal(err)
	}
	cpioErr := cpio.Run()
	if err := gz.Wait(); err != nil {
		t.Fatalf("gzip -dc %s: %v", artifact, err)
	}
	if cpioErr != nil {
		t.Fatalf("cpio %v on %s: %v: %s", args, artifact, cpioErr, stderr.String())
	}
	return out.String()
}
