// Package qemu boots a kernel and an initramfs under QEMU and decides, from
// the serial console, whether the boot succeeded. It serves `fledge boot` and
// the end-to-end tests, so both judge a boot by the same rules (DESIGN §6).
package qemu

import (
	"io"
	"regexp"
	"time"
)

// Defaults applied to a zero Config field.
const (
	DefaultQEMU     = "qemu-system-x86_64"
	DefaultMemoryMB = 256
	// DefaultAccel is TCG: the /dev/kvm of the machines we test on does not
	// boot guests, and TCG works everywhere.
	DefaultAccel   = "tcg"
	DefaultTimeout = 2 * time.Minute
	// DefaultGrace is long enough for a panic that follows the expected line
	// to reach the console (an init that exits panics the kernel within
	// milliseconds), short enough not to slow an edit-pack-boot loop.
	DefaultGrace = 2 * time.Second
	// BaseAppend is always on the kernel command line: the serial console we
	// read, reboot on panic (which -no-reboot turns into QEMU exiting), and
	// an explicit init so a missing /init fails loudly instead of falling
	// back to a root disk an initramfs plugin does not have, and printk
	// timestamps, which Phases are measured with (a kernel built without
	// CONFIG_PRINTK_TIME would print none). no_timer_check skips the
	// kernel's test of the IO-APIC timer, which a TCG guest on a busy host
	// can fail ("IO-APIC + timer doesn't work!", a panic before anything of
	// the image runs; seen here with the host's two CPUs loaded).
	BaseAppend = "console=ttyS0 panic=-1 init=/init printk.time=1 no_timer_check"
)

// failureMarkers are console texts that mean the boot failed whatever else
// appeared: a panic, an init the kernel could not run, a corrupt archive, or
// BusyBox's init waiting for a key press on a console nobody types on.
var failureMarkers = []string{
	"Kernel panic",
	"Failed to execute",
	"Initramfs unpacking failed",
	"Please press Enter",
}

// Config says what to boot and how to judge it.
type Config struct {
	QEMU   string // binary; DefaultQEMU when empty
	Kernel string // bzImage / vmlinuz
	Initrd string // the initramfs
	// Append is added after BaseAppend on the kernel command line.
	Append string
	// Cmdline, when set, is the whole kernel command line instead of
	// BaseAppend and Append.
	Cmdline  string
	MemoryMB int    // DefaultMemoryMB when zero
	CPUs     int    // 1 when zero
	Accel    string // DefaultAccel when empty
	// NIC adds a virtio-net-pci NIC on QEMU's user network, where the
	// guest reaches the host's loopback at 10.0.2.2.
	NIC bool
	// Timeout bounds the whole boot; QEMU is killed when it passes.
	// DefaultTimeout when zero: a boot without a bound can hang a CI run.
	Timeout time.Duration
	// Expect must match a console line (without its line ending) for the
	// boot to succeed. Required unless Health is set.
	Expect *regexp.Regexp
	// Health, when set, judges the boot by a health check through a
	// forwarded port instead of the grace time, and gives the guest a NIC.
	Health *Health
	// Grace, when positive, lets a guest that stays up pass (an agent waits
	// for work and never powers off): the boot succeeds once Grace has gone
	// by after the expected line with no failure marker, and QEMU is then
	// stopped. When zero, the guest must also power off by itself.
	Grace time.Duration
	// Console, when set, receives the serial output as it arrives.
	Console io.Writer
}

// Result is what a boot showed and the verdict drawn from it.
type Result struct {
	OK     bool
	Reason string // one line, for humans
	// Output is the serial console; Stderr is what QEMU itself said.
	Output, Stderr []byte
	Elapsed        time.Duration
	// Matched tells whether Expect matched; MatchedAt is when the first
	// matching line arrived, counted from QEMU's start, so boots of two
	// images can be compared; MatchedLine is that line.
	Matched     bool
	MatchedAt   time.Duration
	MatchedLine string
	// Phases is where the time went, from the kernel's timestamps.
	Phases Phases
	// Healthy tells whether the health check had a 2xx answer, HealthyAt
	// when (counted from QEMU's start), Health what the check found.
	Healthy   bool
	HealthyAt time.Duration
	Health    string
	// Cmdline is the kernel command line the boot used.
	Cmdline string
	// Failure is the first console line holding a failure marker.
	Failure string
	// TimedOut means QEMU was still running at the timeout and was killed.
	TimedOut bool
	// Stopped means the runner ended QEMU (the grace time passed, a failure
	// marker showed, the timeout came or the boot was canceled) rather than
	// QEMU exiting by itself.
	Stopped bool
	// ExitCode is QEMU's exit status; -1 when it was killed.
	ExitCode int
	// PID was QEMU's process id (also its process group).
	PID int
}

func (c Config) withDefaults() Config {
	if c.QEMU == "" {
		c.QEMU = DefaultQEMU
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.Accel == "" {
		c.Accel = DefaultAccel
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	return c
}
