package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

const poweroff = "/bin/busybox poweroff -f\n"

func TestBootSuccess(t *testing.T) {
	t.Parallel()
	var live bytes.Buffer
	res, err := Boot(context.Background(), Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "echo \"fledge-test: pid=$$\"\n"+poweroff),
		Expect:  regexp.MustCompile(`^fledge-test: pid=1$`),
		Console: &live,
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("boot failed: %s\n%s", res.Reason, res.Output)
	}
	if !strings.Contains(res.Reason, "powered off") || res.ExitCode != 0 || res.TimedOut {
		t.Errorf("reason %q, exit %d, timed out %v; want a clean power-off", res.Reason, res.ExitCode, res.TimedOut)
	}
	if res.MatchedLine != "fledge-test: pid=1" || res.MatchedAt <= 0 || res.MatchedAt > res.Elapsed {
		t.Errorf("matched %q at %s of %s; want the init's line, within the boot", res.MatchedLine, res.MatchedAt, res.Elapsed)
	}
	if !bytes.Equal(live.Bytes(), res.Output) || !bytes.Contains(res.Output, []byte("Run /init as init process")) {
		t.Errorf("live console (%d bytes) differs from the kept output (%d bytes), or the kernel log is missing", live.Len(), len(res.Output))
	}
	p := res.Phases
	var sum time.Duration
	for _, ph := range []Phase{p.Kernel, p.Unpack, p.Init, p.Userspace} {
		if !ph.OK || ph.Took < 0 {
			t.Fatalf("phases %+v; want all four measured from the kernel's timestamps", p)
		}
		sum += ph.Took
	}
	// Guest time starts after QEMU does, so the phases fit in the boot.
	// (The unpack of this small archive may take less than the clock's
	// resolution early in the boot.)
	if p.Kernel.Took == 0 || sum > res.Elapsed {
		t.Errorf("phases %+v add up to %s of a %s boot; want a nonzero kernel span, all within it", p, sum, res.Elapsed)
	}
}

func TestBootPanic(t *testing.T) {
	t.Parallel()
	res, err := Boot(context.Background(), Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "echo 'fledge-test: leaving'\n"),
		Expect:  regexp.MustCompile(`fledge-test: leaving`),
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !res.Matched {
		t.Fatalf("OK %v, matched %v; want a failed boot that still printed its line: %s", res.OK, res.Matched, res.Reason)
	}
	if !strings.Contains(res.Failure, "Kernel panic") || !strings.Contains(res.Reason, "Kernel panic") {
		t.Errorf("failure %q, reason %q; want the panic named", res.Failure, res.Reason)
	}
	if res.TimedOut {
		t.Errorf("timed out; panic=-1 with -no-reboot should make QEMU exit at once")
	}
}

func TestBootHangIsKilledAtTimeout(t *testing.T) {
	t.Parallel()
	token := fmt.Sprintf("fledge.hangtest=%d", time.Now().UnixNano())
	const timeout = 40 * time.Second
	res, err := Boot(context.Background(), Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "echo 'fledge-test: sleeping'\nexec /bin/busybox sleep 100000\n"),
		Append:  token,
		Expect:  regexp.MustCompile(`fledge-test: sleeping`),
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !res.TimedOut || !res.Matched || res.ExitCode != -1 {
		t.Fatalf("OK %v, timed out %v, matched %v, exit %d; want a guest that reached init, hung and was killed: %s",
			res.OK, res.TimedOut, res.Matched, res.ExitCode, res.Reason)
	}
	if !strings.Contains(res.Reason, "did not power off") || !strings.Contains(res.Reason, "QEMU killed") {
		t.Errorf("reason %q; want it to say the guest hung and QEMU was killed", res.Reason)
	}
	if res.Elapsed < timeout {
		t.Errorf("returned after %s, before the %s timeout", res.Elapsed, timeout)
	}
	if left := processesWith(t, token); len(left) > 0 {
		t.Errorf("QEMU still running after the timeout: %v", left)
	}
}

func TestBootStopsSoonAfterFailureMarker(t *testing.T) {
	t.Parallel()
	// BusyBox init without an inittab asks for Enter on the console and
	// would wait forever; the runner must not wait for the timeout.
	const timeout = 2 * time.Minute
	res, err := Boot(context.Background(), Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "exec /bin/busybox init\n"),
		Expect:  regexp.MustCompile(`never printed`),
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.TimedOut || !strings.Contains(res.Failure, "Please press Enter") {
		t.Fatalf("OK %v, timed out %v, failure %q; want the prompt caught before the timeout: %s", res.OK, res.TimedOut, res.Failure, res.Reason)
	}
	if !strings.Contains(res.Reason, "QEMU stopped") || res.Elapsed > timeout/2 {
		t.Errorf("reason %q after %s; want QEMU stopped shortly after the prompt", res.Reason, res.Elapsed)
	}
}

func TestBootMissingExpect(t *testing.T) {
	t.Parallel()
	res, err := Boot(context.Background(), Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "echo 'fledge-test: something else'\n"+poweroff),
		Expect:  regexp.MustCompile(`^fledge-test: ready$`),
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Matched || res.TimedOut || res.Failure != "" {
		t.Fatalf("OK %v, matched %v, timed out %v, failure %q; want a clean power-off judged a failure", res.OK, res.Matched, res.TimedOut, res.Failure)
	}
	if !strings.Contains(res.Reason, "no console line matched") || !strings.Contains(res.Reason, "fledge-test: ready") {
		t.Errorf("reason %q; want it to name the missing line", res.Reason)
	}
}

func TestBootCanceled(t *testing.T) {
	t.Parallel()
	token := fmt.Sprintf("fledge.canceltest=%d", time.Now().UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Boot(ctx, Config{
		Kernel:  testKernel(t),
		Initrd:  initramfs(t, "echo 'fledge-test: sleeping'\nexec /bin/busybox sleep 100000\n"),
		Append:  token,
		Expect:  regexp.MustCompile(`fledge-test: sleeping`),
		Console: &cancelOn{cancel: cancel, line: []byte("fledge-test: sleeping")},
		Timeout: 2 * time.Minute,
	})
	if !errors.Is(err, context.Canceled) || res.OK || !strings.Contains(res.Reason, "canceled") {
		t.Fatalf("error %v, OK %v, reason %q; want a canceled boot", err, res.OK, res.Reason)
	}
	if left := processesWith(t, token); len(left) > 0 {
		t.Errorf("QEMU still running after cancelation: %v", left)
	}
}

// cancelOn cancels the boot when the console shows line (which the pipe
// may deliver in pieces).
type cancelOn struct {
	cancel context.CancelFunc
	line   []byte
	seen   bytes.Buffer
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.seen.Write(p)
	if bytes.Contains(c.seen.Bytes(), c.line) {
		c.cancel()
	}
	return len(p), nil
}

func TestBootRefusesWhatItCannotBoot(t *testing.T) {
	kernel := testKernel(t)
	initrd := initramfs(t, poweroff)
	expect := regexp.MustCompile(`x`)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no expect", Config{Kernel: kernel, Initrd: initrd}, "no expected line given"},
		{"no kernel", Config{Initrd: initrd, Expect: expect}, "no kernel given"},
		{"missing kernel", Config{Kernel: "/nonexistent/vmlinuz", Initrd: initrd, Expect: expect}, "kernel: stat /nonexistent/vmlinuz"},
		{"kernel is a folder", Config{Kernel: t.TempDir(), Initrd: initrd, Expect: expect}, "expected a regular file"},
		{"missing initrd", Config{Kernel: kernel, Initrd: "/nonexistent.cpio", Expect: expect}, "initramfs: stat /nonexistent.cpio"},
		{"negative timeout", Config{Kernel: kernel, Initrd: initrd, Expect: expect, Timeout: -time.Second}, "must not be negative"},
		{"missing qemu", Config{QEMU: "qemu-system-nonexistent", Kernel: kernel, Initrd: initrd, Expect: expect}, "apt-get install qemu-system-x86"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Boot(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBootReportsQEMUErrors(t *testing.T) {
	res, err := Boot(context.Background(), Config{
		Kernel: testKernel(t),
		Initrd: initramfs(t, poweroff),
		Accel:  "no-such-accelerator",
		Expect: regexp.MustCompile(`x`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.ExitCode == 0 || !strings.Contains(res.Reason, "QEMU exited with status") || !strings.Contains(res.Reason, "no-such-accelerator") {
		t.Fatalf("OK %v, exit %d, reason %q; want QEMU's own complaint", res.OK, res.ExitCode, res.Reason)
	}
}
