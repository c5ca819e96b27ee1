package qemu

import (
	"regexp"
	"testing"
	"time"
)

// A console as the Debian 6.1 kernel prints it (asynchronous unpack, other
// initcalls between its two lines), then userspace lines without stamps.
func TestPhasesFromKernelTimestamps(t *testing.T) {
	lines := []struct {
		text    string
		arrived time.Duration
	}{
		{"[    0.000000] Linux version 6.1.0-57-amd64", 300 * time.Millisecond},
		{"[    1.178344] Trying to unpack rootfs image as initramfs...", 1500 * time.Millisecond},
		{"[    1.190447] Initialise system trusted keyrings", 1510 * time.Millisecond},
		{"[    1.284950] Freeing initrd memory: 1008K", 1600 * time.Millisecond},
		{"[    1.859962] Run /init as init process", 2200 * time.Millisecond},
		{"app: starting", 2300 * time.Millisecond},
		{"[    2.000000] random: crng init done", 2400 * time.Millisecond},
		{"app: ready", 2650 * time.Millisecond},
		{"app: ready", 2900 * time.Millisecond},
	}
	c := newConsole(regexp.MustCompile(`^app: ready$`), nil, time.Now())
	for _, l := range lines {
		c.timeline.see(l.text, l.arrived, l.text == "app: ready" && !c.matched)
		if l.text == "app: ready" {
			c.matched = true
		}
	}
	got := c.timeline.phases()
	want := Phases{
		Kernel:    Phase{1178344 * time.Microsecond, true},
		Unpack:    Phase{(1284950 - 1178344) * time.Microsecond, true},
		Init:      Phase{(1859962 - 1284950) * time.Microsecond, true},
		Userspace: Phase{(2000000 - 1859962 + 250000) * time.Microsecond, true},
	}
	if got != want {
		t.Fatalf("phases %+v; want %+v", got, want)
	}
}

func TestPhasesMissingBounds(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  Phases
	}{
		{"no timestamps", []string{"Trying to unpack rootfs image as initramfs...", "Run /init as init process", "ready"}, Phases{}},
		{"kernel without initrd support, expected line is the kernel's",
			[]string{"[    0.500000] Unpacking initramfs...", "[    0.700000] Freeing initrd memory: 4K", "[    0.900000] Run /init as init process ready"},
			Phases{Phase{500 * time.Millisecond, true}, Phase{200 * time.Millisecond, true}, Phase{200 * time.Millisecond, true}, Phase{0, true}}},
		{"unpack failed, init never ran",
			[]string{"[    0.500000] Trying to unpack rootfs image as initramfs...", "[    0.600000] Initramfs unpacking failed: junk"},
			Phases{Kernel: Phase{500 * time.Millisecond, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl timeline
			for i, l := range tt.lines {
				tl.see(l, time.Duration(i)*time.Second, i == len(tt.lines)-1 && l != "[    0.600000] Initramfs unpacking failed: junk")
			}
			if got := tl.phases(); got != tt.want {
				t.Fatalf("phases %+v; want %+v", got, tt.want)
			}
		})
	}
}
