package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// failureGrace is how long a guest may keep printing after a failure marker
// (the rest of a panic trace is worth having) before QEMU is stopped: a guest
// that waits for a key press would otherwise run into the timeout.
const failureGrace = 2 * time.Second

// Boot runs QEMU on cfg.Kernel and cfg.Initrd and judges the boot. The error
// is for a boot that could not be attempted or was canceled through ctx; a
// boot that ran and failed is a Result with OK false and a Reason. QEMU runs
// in its own process group, which is killed on timeout, on cancelation,
// after a failure marker or cfg.Grace, and if this process dies, so nothing
// is left running.
func Boot(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	bin, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return Result{}, fmt.Errorf("qemu: %s not found: %w; install it (Debian: apt-get install qemu-system-x86) or name the binary to use", cfg.QEMU, err)
	}
	cmd := exec.Command(bin, cfg.args()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	con := newConsole(cfg.Expect, cfg.Console, start)
	cmd.Stdout = con
	exited, err := startLocked(cmd)
	if err != nil {
		return Result{}, fmt.Errorf("qemu: start %s: %w", bin, err)
	}
	var chk *checker
	var health chan healthOutcome
	stopCheck := func() {}
	if cfg.Health != nil {
		checkCtx, cancel := context.WithCancel(ctx)
		chk, health = &checker{h: cfg.Health, start: start}, make(chan healthOutcome, 1)
		var wg sync.WaitGroup
		wg.Go(func() { chk.run(checkCtx, con, health) })
		// The check ends before Boot returns: no status is reported after.
		stopCheck = func() { cancel(); wg.Wait() }
	}
	run := supervise(ctx, cmd, exited, con, cfg, health)
	stopCheck()
	con.finish()
	res := Result{
		Elapsed:  time.Since(start),
		Stderr:   stderr.Bytes(),
		TimedOut: run.timedOut,
		Stopped:  run.stopped,
		ExitCode: cmd.ProcessState.ExitCode(),
		PID:      cmd.Process.Pid,
		Cmdline:  cfg.cmdline(),
	}
	con.fill(&res)
	switch {
	case run.health.ok:
		res.Healthy, res.HealthyAt, res.Health = true, run.health.at, run.health.reason
	case run.health.reason != "":
		res.Health = run.health.reason
	case chk != nil:
		res.Health, _ = chk.lastFound()
	}
	// A guest kept running after a healthy answer is stopped by
	// canceling: that ends the boot as planned.
	if run.canceled && !run.passed {
		res.Reason = "boot canceled; QEMU killed"
		return res, fmt.Errorf("qemu: boot of %s: %w", cfg.Initrd, ctx.Err())
	}
	res.OK, res.Reason = verdict(res, cfg, run)
	return res, nil
}

// outcome says why supervise stopped QEMU, if it did (stopped), and what
// the health check found.
type outcome struct {
	timedOut, canceled, stoppedOnFailure, passed, unhealthy, stopped bool
	health                                                           healthOutcome
}

// startLocked starts cmd from a goroutine that stays on its OS thread
// until cmd has exited and been waited for (closing the returned channel):
// Pdeathsig fires when the thread that started the child ends, and only a
// locked thread is sure to outlive it.
func startLocked(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		// The exit status is read from cmd.ProcessState; Wait's error
		// only repeats it.
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// supervise waits for QEMU to exit, killing its process group at the
// timeout, on cancelation, a grace period after a failure marker, or (when
// cfg.Grace is set) cfg.Grace after the expected line if no failure marker
// came meanwhile. With a health check (its outcome arrives on health), the
// boot passes once the check is healthy and the expected line, if any, has
// appeared; a failed check stops QEMU, and a guest kept running after
// passing is stopped by canceling.
func supervise(ctx context.Context, cmd *exec.Cmd, exited <-chan struct{}, con *console, cfg Config, health <-chan healthOutcome) outcome {
	deadline := time.NewTimer(cfg.Timeout)
	defer deadline.Stop()
	failed, canceled := con.failed, ctx.Done()
	var expected <-chan struct{}
	if cfg.Grace > 0 || cfg.Health != nil {
		expected = con.expected
	}
	lineSeen := cfg.Expect == nil
	var failureWait, passWait <-chan time.Time
	var out outcome
	kill := func(why *bool) {
		*why, out.stopped = true, true
		// The negative pid addresses the whole group: QEMU and anything
		// it may have started. QEMU holds no disk, so nothing is lost.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		deadline.Stop()
		failed, expected, canceled, failureWait, passWait, health = nil, nil, nil, nil, nil, nil
	}
	pass := func() {
		if !cfg.Health.KeepRunning {
			kill(&out.passed)
			return
		}
		out.passed = true
		deadline.Stop()
		if cfg.Health.Serving != nil {
			cfg.Health.Serving(cfg.Health.Addr())
		}
	}
	for {
		select {
		case <-exited:
			return out
		case <-deadline.C:
			kill(&out.timedOut)
		case <-canceled:
			kill(&out.canceled)
		case <-failed:
			// A failure ends any grace the expected line had started, and
			// a health check answered after it passes nothing.
			failed, expected, passWait, health = nil, nil, nil, nil
			failureWait = time.After(failureGrace)
		case out.health = <-health:
			health = nil
			switch {
			case !out.health.ok:
				kill(&out.unhealthy)
			case lineSeen:
				pass()
			}
		case <-expected:
			expected, lineSeen = nil, true
			switch {
			case cfg.Health == nil:
				passWait = time.After(cfg.Grace)
			case out.health.ok:
				pass()
			}
		case <-failureWait:
			kill(&out.stoppedOnFailure)
		case <-passWait:
			kill(&out.passed)
		}
	}
}

func (c Config) check() error {
	if c.Expect == nil && c.Health == nil {
		return errors.New("qemu: no expected line given: a boot succeeds only when a console line matches it; set one (fledge boot --expect REGEX)")
	}
	if c.Timeout < 0 || c.MemoryMB < 0 || c.Grace < 0 {
		return fmt.Errorf("qemu: timeout %s, grace %s and memory %d MB must not be negative", c.Timeout, c.Grace, c.MemoryMB)
	}
	if err := CheckKernel(c.Kernel); err != nil {
		return err
	}
	return regularFile("initramfs", c.Initrd)
}

func regularFile(what, path string) error {
	if path == "" {
		return fmt.Errorf("qemu: no %s given; name the file to boot", what)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("qemu: %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("qemu: %s %s is a %s, expected a regular file", what, path, fi.Mode().Type())
	}
	return nil
}

// args follows DESIGN §6: no default devices, no display, the serial port
// on stdio (stdin is /dev/null, so nothing types at the guest), and QEMU
// exits instead of rebooting, which turns panic=-1 into an exit.
func (c Config) args() []string {
	args := []string{
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-m", strconv.Itoa(c.MemoryMB), "-smp", strconv.Itoa(c.CPUs), "-accel", c.Accel,
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.cmdline(),
	}
	if c.NIC || c.Health != nil {
		netdev := "user,id=net0"
		if h := c.Health; h != nil {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", h.HostPort, GuestAddr, h.GuestPort)
		}
		// romfile= leaves out the NIC's boot ROM: the kernel is given, and
		// the ROM's file is a package (ipxe-qemu) QEMU may lack.
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	return args
}

// Command is the QEMU command line a boot of c runs, binary first.
func (c Config) Command() []string {
	c = c.withDefaults()
	return append([]string{c.QEMU}, c.args()...)
}

func (c Config) cmdline() string {
	if c.Cmdline != "" {
		return c.Cmdline
	}
	if c.Append != "" {
		return BaseAppend + " " + c.Append
	}
	return BaseAppend
}
