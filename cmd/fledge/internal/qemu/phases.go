package qemu

import (
	"regexp"
	"strconv"
	"time"
)

// Phase is one part of the boot. OK is false when the console did not show
// both of its bounds (a kernel that prints no timestamps, an unpack that
// failed, a boot that never got that far).
type Phase struct {
	Took time.Duration
	OK   bool
}

// Phases splits a boot by the kernel's own printk timestamps, which count
// from the kernel's start and are not disturbed by how long QEMU took to
// start or how the host scheduled it:
//
//   - Kernel: kernel start to "Trying to unpack rootfs image as initramfs"
//     (or "Unpacking initramfs", printed by kernels without initrd support);
//   - Unpack: from there to "Freeing initrd memory", printed when the
//     archive has been unpacked and its memory is given back. Kernels since
//     5.13 unpack asynchronously by default (initramfs_async=1), so on one
//     CPU this span also holds the initcalls that ran meanwhile; boot with
//     --append initramfs_async=0 to measure the unpack alone;
//   - Init: from there to "Run /init as init process", when the kernel hands
//     over to userspace;
//   - Userspace: from there to the expected line.
//
// The expected line is usually printed by userspace and carries no kernel
// timestamp. Its guest time is taken as the timestamp of the last kernel
// line before it plus the host time between the two lines' arrival on the
// serial port: both travel the same port in order, so the estimate errs only
// by how long the port buffered them (milliseconds), never by QEMU's start.
type Phases struct {
	Kernel, Unpack, Init, Userspace Phase
}

// printkTime matches the "[    1.178344] " prefix printk.time=1 gives.
var printkTime = regexp.MustCompile(`^\[\s*(\d+)\.(\d{6})\] `)

var (
	unpackStartLine = regexp.MustCompile(`\] (Trying to unpack rootfs image as initramfs|Unpacking initramfs)`)
	unpackEndLine   = regexp.MustCompile(`\] Freeing initrd memory`)
	runInitLine     = regexp.MustCompile(`\] Run \S+ as init process`)
)

// stamp is a moment of the boot in guest time (kernel timestamps).
type stamp struct {
	at time.Duration
	ok bool
}

// timeline collects the stamps Phases are made of, line by line.
type timeline struct {
	unpackStart, unpackEnd, runInit, expected stamp
	// last is the last kernel-stamped line: its guest time and when it
	// arrived on the host, counted from QEMU's start.
	last        stamp
	lastArrived time.Duration
}

// kernelTime parses the printk timestamp at the start of line.
func kernelTime(line string) (time.Duration, bool) {
	m := printkTime.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	s, err1 := strconv.ParseInt(m[1], 10, 64)
	us, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(s)*time.Second + time.Duration(us)*time.Microsecond, true
}

// see notes line, which arrived at host time arrived; expected tells
// whether it is the first line matching the expected pattern.
func (tl *timeline) see(line string, arrived time.Duration, expected bool) {
	kt, stamped := kernelTime(line)
	if stamped {
		mark := func(s *stamp, re *regexp.Regexp) {
			if !s.ok && re.MatchString(line) {
				*s = stamp{kt, true}
			}
		}
		mark(&tl.unpackStart, unpackStartLine)
		mark(&tl.unpackEnd, unpackEndLine)
		mark(&tl.runInit, runInitLine)
		tl.last, tl.lastArrived = stamp{kt, true}, arrived
	}
	if !expected {
		return
	}
	switch {
	case stamped:
		tl.expected = stamp{kt, true}
	case tl.last.ok:
		tl.expected = stamp{tl.last.at + arrived - tl.lastArrived, true}
	}
}

func (tl *timeline) phases() Phases {
	span := func(from, to stamp) Phase {
		if !from.ok || !to.ok || to.at < from.at {
			return Phase{}
		}
		return Phase{to.at - from.at, true}
	}
	return Phases{
		Kernel:    span(stamp{0, tl.unpackStart.ok}, tl.unpackStart),
		Unpack:    span(tl.unpackStart, tl.unpackEnd),
		Init:      span(tl.unpackEnd, tl.runInit),
		Userspace: span(tl.runInit, tl.expected),
	}
}
