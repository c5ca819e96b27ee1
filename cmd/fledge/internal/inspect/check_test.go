package inspect

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// goodRootfs is an image that breaks no rule: static BusyBox, its sh link
// and a shell-script /init.
func goodRootfs(t *testing.T) *overlay.Static {
	return layer("rootfs",
		hostFile(t, "/bin/busybox", 0o755, staticBusybox(t)),
		link("/bin/sh", "busybox"),
		link("/usr/bin/env", "/bin/busybox"),
		link("/etc/mtab", "/proc/mounts"),
		file("/init", 0o755, "#!/bin/sh\necho hello\n"),
		file("/etc/motd", 0o644, "welcome\n"),
	)
}

// checkOnTop checks the good image with a mappings layer of top on it.
func checkOnTop(t *testing.T, top []overlay.Entry, opts CheckOptions) []Finding {
	t.Helper()
	v, layers := viewAndLayers(t, goodRootfs(t), layer("mappings", top...))
	opts.Layers = layers
	got, err := Check(v, opts)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func ruleIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Rule+" "+f.Path)
	}
	return ids
}

func TestGoodImagePasses(t *testing.T) {
	v := view(t, goodRootfs(t), layer("edits", file("/etc/motd", 0o644, "edited\n")))
	got, err := Check(v, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a good image got findings: %v", got)
	}
}

// foreignELF is BusyBox with its e_machine changed to AArch64: a real ELF
// file that debug/elf reads as another architecture.
func foreignELF(t *testing.T) overlay.Entry {
	b, err := os.ReadFile(staticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[18:20], uint16(elf.EM_AARCH64))
	return overlay.Entry{Path: "/usr/bin/foreign", Type: overlay.Regular, Perm: 0o755, Size: int64(len(b)), Content: overlay.Bytes(b)}
}

const (
	hostLibc   = "/lib/x86_64-linux-gnu/libc.so.6"
	hostLoader = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
)

func TestEveryRuleFires(t *testing.T) {
	cases := []struct {
		name string
		top  []overlay.Entry
		opts CheckOptions
		want string // "rule path"
	}{
		{"no init", []overlay.Entry{whiteout("/init")}, CheckOptions{}, "init-missing /init"},
		{"init links nowhere", []overlay.Entry{link("/init", "/sbin/nothing")}, CheckOptions{}, "init-missing /init"},
		{"init not executable", []overlay.Entry{file("/init", 0o644, "#!/bin/sh\n")}, CheckOptions{}, "init-not-executable /init"},
		{"init is a directory", []overlay.Entry{dir("/init", 0o755)}, CheckOptions{}, "init-not-executable /init"},
		{"dynamic init without loader", []overlay.Entry{hostFile(t, "/init", 0o755, "/bin/true")}, CheckOptions{}, "init-interp-missing /init"},
		{"dynamic init without libc", []overlay.Entry{
			hostFile(t, "/init", 0o755, "/bin/true"),
			hostFile(t, "/lib64/ld-linux-x86-64.so.2", 0o755, hostLoader),
		}, CheckOptions{}, "lib-missing /init"},
		{"mapped program without libc", []overlay.Entry{
			hostFile(t, "/usr/bin/tool", 0o755, "/bin/true"),
			hostFile(t, "/lib64/ld-linux-x86-64.so.2", 0o755, hostLoader),
		}, CheckOptions{}, "lib-missing /usr/bin/tool"},
		{"mapped program without its loader", []overlay.Entry{hostFile(t, "/usr/bin/tool", 0o755, "/bin/true")}, CheckOptions{}, "init-interp-missing /usr/bin/tool"},
		{"library without its own dependency", append(dynamicApp(t), whiteout("/usr/lib/liba.so")), CheckOptions{}, "lib-missing /lib/app/libb.so"},
		{"script init for a missing interpreter", []overlay.Entry{file("/init", 0o755, "#!/usr/bin/python3 -u\n")}, CheckOptions{}, "shebang-missing /init"},
		{"bin script through env", []overlay.Entry{file("/usr/bin/tool", 0o755, "#!/usr/bin/env perl\n")}, CheckOptions{}, "shebang-missing /usr/bin/tool"},
		{"entrypoint not in the image", nil, CheckOptions{Entrypoint: "/usr/bin/nothere"}, "entrypoint-missing /usr/bin/nothere"},
		{"entrypoint links nowhere", []overlay.Entry{link("/usr/bin/app", "app.real")}, CheckOptions{Entrypoint: "/usr/bin/app"}, "entrypoint-missing /usr/bin/app"},
		{"entrypoint name on no folder of PATH", nil, CheckOptions{Entrypoint: "nothere"}, "entrypoint-missing nothere"},
		{"entrypoint not executable", []overlay.Entry{file("/usr/lib/app/run", 0o644, "#!/bin/sh\n")}, CheckOptions{Entrypoint: "/usr/lib/app/run"}, "entrypoint-not-executable /usr/lib/app/run"},
		{"entrypoint is a directory", []overlay.Entry{dir("/opt/app", 0o755)}, CheckOptions{Entrypoint: "/opt/app"}, "entrypoint-not-executable /opt/app"},
		{"init with Windows line endings", []overlay.Entry{file("/init", 0o755, "#!/bin/sh\r\necho hi\r\n")}, CheckOptions{}, "shebang-crlf /init"},
		{"mapped script with an argument and Windows line endings", []overlay.Entry{file("/opt/app/run", 0o755, "#!/bin/sh -e\r\n")}, CheckOptions{}, "shebang-crlf /opt/app/run"},
		{"kestrel absent", nil, CheckOptions{WantKestrel: true}, "kestrel-missing /bin/kestrel"},
		{"kestrel not executable", []overlay.Entry{file("/bin/kestrel", 0o644, "#!/bin/sh\n")}, CheckOptions{WantKestrel: true}, "kestrel-missing /bin/kestrel"},
		{"dangling link", []overlay.Entry{link("/usr/bin/vi", "../../opt/vim/bin/vim")}, CheckOptions{}, "symlink-dangling /usr/bin/vi"},
		{"link loop", []overlay.Entry{link("/usr/bin/a", "b"), link("/usr/bin/b", "a")}, CheckOptions{}, "symlink-dangling /usr/bin/a"},
		{"link into a home folder", []overlay.Entry{link("/usr/bin/app", "/home/dev/app/build/app")}, CheckOptions{}, "symlink-host-path /usr/bin/app"},
		{"link into the recipe folder", []overlay.Entry{link("/etc/app.conf", "/srv/plugins/app/app.conf")}, CheckOptions{HostDirs: []string{"/srv/plugins/app"}}, "symlink-host-path /etc/app.conf"},
		{"no console", []overlay.Entry{whiteout("/dev/console")}, CheckOptions{}, "console-missing /dev/console"},
		{"console is a file", []overlay.Entry{file("/dev/console", 0o600, "")}, CheckOptions{}, "console-missing /dev/console"},
		{"mapping replaces a folder of programs", []overlay.Entry{file("/bin", 0o755, "#!/bin/sh\n")}, CheckOptions{}, "shadowed-programs /bin"},
		{"mapping links a folder of programs elsewhere", []overlay.Entry{link("/bin", "/opt")}, CheckOptions{}, "shadowed-programs /bin"},
		{"mapping hides a rootfs file", []overlay.Entry{file("/etc/motd", 0o644, "mine\n")}, CheckOptions{}, "shadowed /etc/motd"},
		{"binary of another architecture", []overlay.Entry{hostFile(t, "/init", 0o755, staticBusybox(t)), foreignELF(t)}, CheckOptions{}, "arch-mismatch /usr/bin/foreign"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkOnTop(t, tc.top, tc.opts)
			ids := ruleIDs(got)
			if !slices.Contains(ids, tc.want) {
				t.Fatalf("want finding %q, got %q", tc.want, ids)
			}
			for _, f := range got {
				if f.Fix == "" || f.Message == "" || (f.Severity != Error && f.Severity != Warning) {
					t.Errorf("finding without message, fix or severity: %+v", f)
				}
			}
		})
	}
}

// TestRuleTableIsCovered keeps the table test honest: a new rule needs a
// case above.
func TestRuleTableIsCovered(t *testing.T) {
	covered := []string{"init-missing", "init-not-executable", "init-interp-missing", "lib-missing",
		"shebang-missing", "shebang-crlf", "entrypoint-missing", "entrypoint-not-executable", "kestrel-missing", "symlink-host-path", "symlink-dangling", "console-missing",
		"shadowed-programs", "shadowed", "arch-mismatch"}
	for _, r := range Rules() {
		if !slices.Contains(covered, r.ID) {
			t.Errorf("rule %s has no test case in TestEveryRuleFires", r.ID)
		}
	}
}

func TestWhatIsNotReported(t *testing.T) {
	cases := []struct {
		name string
		top  []overlay.Entry
		opts CheckOptions
	}{
		{"dynamic init with loader and libc through a merged /usr", []overlay.Entry{
			hostFile(t, "/init", 0o755, "/bin/true"),
			link("/lib", "usr/lib"),
			hostFile(t, "/usr/lib/x86_64-linux-gnu/libc.so.6", 0o755, hostLibc),
			hostFile(t, "/lib64/ld-linux-x86-64.so.2", 0o755, hostLoader),
		}, CheckOptions{}},
		{"libraries through RUNPATH with $ORIGIN", dynamicApp(t), CheckOptions{}},
		{"entrypoint is a BusyBox applet on PATH", []overlay.Entry{link("/bin/awk", "busybox")}, CheckOptions{Entrypoint: "awk"}},
		{"entrypoint through a symlink", []overlay.Entry{link("/usr/bin/app", "../../bin/busybox")}, CheckOptions{Entrypoint: "/usr/bin/app"}},
		{"executable kestrel", []overlay.Entry{file("/bin/kestrel", 0o755, "#!/bin/sh\n")}, CheckOptions{WantKestrel: true}},
		{"env finds a BusyBox applet", []overlay.Entry{link("/bin/awk", "busybox"), file("/usr/bin/tool", 0o755, "#!/usr/bin/env awk\n")}, CheckOptions{}},
		{"absolute link inside the image", []overlay.Entry{link("/root/.profile", "/etc/motd")}, CheckOptions{}},
		{"link into /run", []overlay.Entry{link("/etc/resolv.conf", "/run/resolv.conf")}, CheckOptions{}},
		{"a link to a folder that has the programs", []overlay.Entry{
			link("/bin", "usr/bin"), hostFile(t, "/usr/bin/busybox", 0o755, staticBusybox(t)), link("/usr/bin/sh", "busybox"),
		}, CheckOptions{}},
		{"new directory merges", []overlay.Entry{dir("/etc", 0o755), file("/etc/app.conf", 0o644, "x")}, CheckOptions{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkOnTop(t, tc.top, tc.opts)
			for _, f := range got {
				if f.Rule != "shadowed" || f.Path != "/init" && f.Path != "/lib" && f.Path != "/bin" {
					t.Errorf("unexpected finding: %+v", f)
				}
			}
		})
	}
}

func TestExpectsKestrel(t *testing.T) {
	cases := []struct {
		init string
		want bool
	}{
		{"\x7fELF...\x00/bin/kestrel\x00fledge-init: exec %s\x00", true},
		{"\x7fELF...\x00/bin/kestrel-old\x00", false},
		{"#!/bin/sh\n[ -x /bin/kestrel ] || echo no kestrel\n", false},
	}
	for _, tc := range cases {
		v := view(t, layer("init", file("/init", 0o755, tc.init)))
		got, err := ExpectsKestrel(v)
		if err != nil || got != tc.want {
			t.Errorf("ExpectsKestrel(%q) = %v, %v; want %v", tc.init, got, err, tc.want)
		}
	}
}

// The workload's entrypoint is followed wherever it comes from; other
// programs of a rootfs are the rootfs's business.
func TestEntrypointIsFollowed(t *testing.T) {
	rootfs := layer("rootfs2",
		hostFile(t, "/usr/bin/workload", 0o755, "/bin/true"),
		hostFile(t, "/usr/bin/other", 0o755, "/bin/true"),
		hostFile(t, "/lib64/ld-linux-x86-64.so.2", 0o755, hostLoader))
	for _, ep := range []string{"/usr/bin/workload", "workload"} {
		got, err := Check(view(t, goodRootfs(t), rootfs), CheckOptions{Entrypoint: ep})
		if err != nil {
			t.Fatal(err)
		}
		if ids := ruleIDs(got); !slices.Equal(ids, []string{"lib-missing /usr/bin/workload"}) {
			t.Errorf("entrypoint %q: findings %q, want lib-missing /usr/bin/workload only", ep, ids)
		}
	}
}

// An /init that starts with the ELF magic but does not parse cannot run:
// the finding is about /init, not every healthy binary compared with it.
func TestDamagedELFInit(t *testing.T) {
	got := checkOnTop(t, []overlay.Entry{file("/init", 0o755, "\x7fELF truncated")}, CheckOptions{})
	ids := ruleIDs(got)
	if !slices.Contains(ids, "init-not-executable /init") {
		t.Errorf("a damaged ELF /init was not reported: %q", ids)
	}
	for _, f := range got {
		if f.Rule == "arch-mismatch" {
			t.Errorf("a healthy binary blamed for the damaged /init: %+v", f)
		}
	}
}

// A #! line ending in a carriage return is found in every program check
// follows, the entrypoint included, and reported once: the interpreter it
// names ("/bin/sh\r") is not reported missing as well.
func TestShebangCRIsFollowedToTheEntrypoint(t *testing.T) {
	rootfs := layer("rootfs2", file("/opt/app/run", 0o755, "#!/bin/sh\r\necho hi\r\n"))
	for ep, want := range map[string][]string{"": nil, "/opt/app/run": {"shebang-crlf /opt/app/run"}} {
		got, err := Check(view(t, goodRootfs(t), rootfs), CheckOptions{Entrypoint: ep})
		if err != nil {
			t.Fatal(err)
		}
		if ids := ruleIDs(got); !slices.Equal(ids, want) {
			t.Errorf("entrypoint %q: findings %q, want %q", ep, ids, want)
		}
		for _, f := range got {
			if !strings.Contains(f.Message, "names the interpreter \"/bin/sh\r\"") || !strings.Contains(f.Fix, `sed -i 's/\r$//'`) {
				t.Errorf("finding does not show the interpreter the kernel looks for, or the fix: %+v", f)
			}
		}
	}
}

// A file over a folder of programs is one error naming what it hides (the
// links elsewhere that led into the folder too), not a shadowed or
// dangling warning as well; a folder without programs, or an edit, is the
// business of those rules.
func TestHiddenPrograms(t *testing.T) {
	busybox := layer("busybox", link("/usr/bin/awk", "../../bin/busybox"), link("/usr/bin/wget", "../../bin/busybox"),
		file("/usr/bin/tool", 0o755, "#!/bin/sh\n"), file("/usr/bin/README", 0o644, "not a program\n"), dir("/usr/bin/sub", 0o755),
		file("/usr/bin/sub/deep", 0o755, "#!/bin/sh\n"), dir("/etc/app", 0o755), file("/etc/app/app.conf", 0o644, "x\n"),
		link("/sbin/tool", "../usr/bin/tool"))
	cases := []struct {
		name string
		top  *overlay.Static
		want []string
	}{
		{"a file over /usr/bin", layer("mappings", hostFile(t, "/usr/bin", 0o755, staticBusybox(t))), []string{"shadowed-programs /usr/bin"}},
		{"a file over a folder of no programs", layer("mappings", file("/etc/app", 0o644, "x\n")), []string{"shadowed /etc/app"}},
		{"a file over a folder, then a folder over the file", layer("init", file("/usr/bin", 0o644, "x\n"), file("/usr/bin/new", 0o755, "#!/bin/sh\n")), []string{"shadowed-programs /usr/bin"}},
		{"an edit", layer("edits", file("/usr/bin", 0o644, "x\n")), []string{"symlink-dangling /sbin/tool"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, layers := viewAndLayers(t, goodRootfs(t), busybox, tc.top)
			got, err := Check(v, CheckOptions{Layers: layers})
			if err != nil {
				t.Fatal(err)
			}
			if ids := ruleIDs(got); !slices.Equal(ids, tc.want) {
				t.Fatalf("findings %q, want %q", ids, tc.want)
			}
			if len(got) == 1 && got[0].Rule == "shadowed-programs" {
				msg := got[0].Message
				if got[0].Severity != Error || !strings.Contains(msg, "6 program(s)") || !strings.Contains(msg, ": /sbin/tool, /usr/bin/awk, /usr/bin/env and 3 more") {
					t.Errorf("the finding does not count and name the hidden programs: %+v", got[0])
				}
			}
		})
	}
}
