package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ctrl-C during a boot: one line saying so, QEMU stopped (none left
// running), and the shell's status for SIGINT, 130; with --json, the one
// object says it too.
func TestBootInterrupted(t *testing.T) {
	t.Parallel()
	kernel := testKernel(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	dir := noneRecipe(t, "echo sleeping\nexec sleep 100000\n", 0o755)
	for _, json := range []bool{false, true} {
		token := fmt.Sprintf("fledge.sigint=%v-%d", json, time.Now().UnixNano())
		args := []string{"boot", "--kernel", kernel, "--expect", "^never$", "--append", token}
		if json {
			args = append(args, "--json")
		}
		code, stdout, stderr := interruptBoot(t, dir, json, args...)
		if code != 130 || strings.Contains(stderr, "context canceled") {
			t.Fatalf("%v: exit %d (want 130), stderr %q", args, code, stderr)
		}
		const want = "fledge: boot interrupted: SIGINT received; QEMU stopped\n"
		if json {
			rep := oneBootReport(t, stdout)
			if rep.Verdict != "interrupted" || rep.Reason != "SIGINT received; QEMU stopped" || !rep.Stopped || !strings.HasSuffix(stderr, want) {
				t.Errorf("--json: report %+v, stderr ends %q; want verdict interrupted, QEMU stopped", rep, lastLineOf(stderr))
			}
		} else if stderr != want {
			t.Errorf("stderr %q; want %q", stderr, want)
		}
		if left := processesWith(t, token); left != "" {
			t.Errorf("QEMU left running after the interrupt: %s", left)
		}
	}
}

// interruptBoot runs fledge ARGS in dir, sends it SIGINT once the guest's
// kernel has started printing on the console (stdout, or stderr when
// consoleOnStderr), and returns its exit status, stdout and stderr.
func interruptBoot(t *testing.T, dir string, consoleOnStderr bool, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(fledgeBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	booting := &watch{text: "Linux version", seen: make(chan struct{})}
	var other bytes.Buffer
	cmd.Stdout, cmd.Stderr = booting, &other
	if consoleOnStderr {
		cmd.Stdout, cmd.Stderr = &other, booting
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-booting.seen:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if err != nil && !ok {
		t.Fatal(err)
	}
	code := 0
	if ok {
		code = ee.ExitCode()
	}
	if consoleOnStderr {
		return code, other.String(), booting.String()
	}
	return code, booting.String(), other.String()
}

// watch keeps what is written and closes seen once text has appeared.
type watch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	text string
	seen chan struct{}
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := bytes.Contains(w.buf.Bytes(), []byte(w.text))
	w.buf.Write(p)
	if !had && bytes.Contains(w.buf.Bytes(), []byte(w.text)) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func lastLineOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
