package ldso

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sysroot is a fake host tree in a temporary folder, filled with tiny ELF
// files that gcc builds at test time (-nostdlib: nothing but what the test
// names is needed).
type sysroot struct {
	t    *testing.T
	root string
	src  string
}

func newSysroot(t *testing.T) *sysroot {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc not found: %v; install the Debian package gcc", err)
	}
	return &sysroot{t: t, root: t.TempDir(), src: t.TempDir()}
}

// lib builds a shared object with soname name at guest path p, needing the
// given libraries (found at link time in the build folder).
func (s *sysroot) lib(p, name string, needs []string, ldflags ...string) {
	s.t.Helper()
	c := filepath.Join(s.src, name+".c")
	s.write(c, "int f_"+strings.NewReplacer(".", "_", "-", "_").Replace(name)+"(void) { return 1; }\n")
	out := filepath.Join(s.src, name)
	args := []string{"-shared", "-nostdlib", "-fPIC", "-Wl,--no-as-needed,-soname," + name, "-o", out, c, "-L" + s.src}
	for _, n := range needs {
		args = append(args, "-l:"+n)
	}
	s.gcc(append(args, ldflags...)...)
	s.install(out, p)
}

// prog builds a position-independent program with interpreter interp.
func (s *sysroot) prog(p, interp string, needs []string, ldflags ...string) {
	s.t.Helper()
	c := filepath.Join(s.src, "main.c")
	s.write(c, "int _start(void) { return 0; }\n")
	out := filepath.Join(s.src, "prog")
	args := []string{"-nostdlib", "-fPIE", "-pie", "-o", out, c, "-L" + s.src, "-Wl,--no-as-needed,--dynamic-linker=" + interp}
	for _, n := range needs {
		args = append(args, "-l:"+n)
	}
	s.gcc(append(args, ldflags...)...)
	s.install(out, p)
}

func (s *sysroot) gcc(args ...string) {
	s.t.Helper()
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
}

func (s *sysroot) install(from, p string) {
	s.t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		s.t.Fatal(err)
	}
	s.write(filepath.Join(s.root, p), string(b))
}

func (s *sysroot) write(host, data string) {
	s.t.Helper()
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(host, []byte(data), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sysroot) file(p, data string) { s.t.Helper(); s.write(filepath.Join(s.root, p), data) }

func (s *sysroot) link(p, target string) {
	s.t.Helper()
	host := filepath.Join(s.root, p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Symlink(target, host); err != nil {
		s.t.Fatal(err)
	}
}

// machine rewrites the e_machine field of the file at p.
func (s *sysroot) machine(p string, m elf.Machine) {
	s.t.Helper()
	host := filepath.Join(s.root, p)
	b, err := os.ReadFile(host)
	if err != nil {
		s.t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[18:20], uint16(m))
	s.write(host, string(b))
}

const interp = "/lib64/ld-test.so.2"

// loader puts a stand-in dynamic loader at the interpreter path.
func (s *sysroot) loader() { s.lib(interp, "ld-test.so.2", nil) }

// found renders a closure as "name=SOURCE:path", SOURCE the index of
// the source, and "missing NAME by NEEDER".
func found(cl *Closure) []string {
	var out []string
	for _, o := range cl.Objects {
		out = append(out, fmt.Sprintf("%s=%d:%s", o.Name, o.Source, o.Path))
	}
	for _, m := range cl.Missing {
		out = append(out, "missing "+m.Name+" by "+m.Needer)
	}
	slices.Sort(out)
	return out
}

func TestResolve(t *testing.T) {
	cases := []struct {
		name  string
		build func(s *sysroot)
		want  []string
	}{
		{"RPATH is inherited by what the program loads", func(s *sysroot) {
			s.loader()
			s.lib("/opt/r/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/libb.so.1", "libb.so.1", []string{"liba.so.1"})
			s.prog("/app", interp, []string{"libb.so.1"}, "-Wl,--disable-new-dtags,-rpath,/opt/r")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/opt/r/liba.so.1", "libb.so.1=0:/usr/lib/libb.so.1"}},
		{"RUNPATH is not", func(s *sysroot) {
			s.loader()
			s.lib("/opt/r/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/r/libb.so.1", "libb.so.1", []string{"liba.so.1"})
			s.prog("/app", interp, []string{"libb.so.1"}, "-Wl,--enable-new-dtags,-rpath,/opt/r")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/usr/lib/liba.so.1", "libb.so.1=0:/opt/r/libb.so.1"}},
		{"a RUNPATH in the needer turns the inherited RPATH off", func(s *sysroot) {
			s.loader()
			s.lib("/opt/r/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/run/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/libb.so.1", "libb.so.1", []string{"liba.so.1"}, "-Wl,--enable-new-dtags,-rpath,/opt/run")
			s.prog("/app", interp, []string{"libb.so.1"}, "-Wl,--disable-new-dtags,-rpath,/opt/r")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/opt/run/liba.so.1", "libb.so.1=0:/usr/lib/libb.so.1"}},
		{"RUNPATH comes before the default folders", func(s *sysroot) {
			s.loader()
			s.lib("/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/run/liba.so.1", "liba.so.1", nil)
			s.prog("/app", interp, []string{"liba.so.1"}, "-Wl,--enable-new-dtags,-rpath,/opt/run")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/opt/run/liba.so.1"}},
		{"$ORIGIN is the folder of the object naming it", func(s *sysroot) {
			s.loader()
			s.lib("/opt/app/lib/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/app/lib/plugins/libp.so.1", "libp.so.1", []string{"liba.so.1"}, "-Wl,-rpath,$ORIGIN/..")
			s.prog("/opt/app/bin/app", interp, []string{"libp.so.1"}, "-Wl,-rpath,${ORIGIN}/../lib/plugins")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/opt/app/lib/liba.so.1", "libp.so.1=0:/opt/app/lib/plugins/libp.so.1"}},
		{"$ORIGIN is a token only when a name does not go on", func(s *sysroot) {
			s.loader()
			s.lib("/opt/app/bin_x/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.prog("/opt/app/bin/app", interp, []string{"liba.so.1"}, "-Wl,-rpath,$ORIGIN_x")
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/usr/lib/liba.so.1"}},
		{"musl takes $ORIGIN_x as $ORIGIN then _x", func(s *sysroot) {
			s.lib("/lib/ld-musl-x86_64.so.1", "libc.so", nil)
			s.lib("/opt/app/bin_x/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.prog("/opt/app/bin/app", "/lib/ld-musl-x86_64.so.1", []string{"libc.so", "liba.so.1"}, "-Wl,-rpath,$ORIGIN_x")
		}, []string{"/lib/ld-musl-x86_64.so.1=0:/lib/ld-musl-x86_64.so.1", "liba.so.1=0:/opt/app/bin_x/liba.so.1"}},
		{"musl drops a whole RUNPATH that holds another token", func(s *sysroot) {
			s.lib("/lib/ld-musl-x86_64.so.1", "libc.so", nil)
			s.lib("/opt/a/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.prog("/app", "/lib/ld-musl-x86_64.so.1", []string{"libc.so", "liba.so.1"}, "-Wl,-rpath,/opt/a:$LIB/x")
		}, []string{"/lib/ld-musl-x86_64.so.1=0:/lib/ld-musl-x86_64.so.1", "liba.so.1=0:/usr/lib/liba.so.1"}},
		{"ld.so.conf with nested and relative includes", func(s *sysroot) {
			s.loader()
			s.file("/etc/ld.so.conf", "# comment\ninclude ld.so.conf.d/*.conf\n")
			s.file("/etc/ld.so.conf.d/a.conf", "/opt/first # trailing comment\ninclude /etc/more.conf\n")
			s.file("/etc/ld.so.conf.d/b.conf", "include /etc/ld.so.conf\n/opt/third\n")
			s.file("/etc/more.conf", "/opt/second:/opt/unused\n")
			s.lib("/opt/second/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/third/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/third/libb.so.1", "libb.so.1", nil)
			s.prog("/app", interp, []string{"liba.so.1", "libb.so.1"})
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/opt/second/liba.so.1", "libb.so.1=0:/opt/third/libb.so.1"}},
		{"symlink chains in files and folders", func(s *sysroot) {
			s.lib("/usr/lib/x86_64-linux-gnu/ld-test.so.2", "ld-test.so.2", nil)
			s.link(interp, "/lib/x86_64-linux-gnu/ld-test.so.2")
			s.link("/lib", "usr/lib")
			s.lib("/usr/lib/real/liba.so.1.2.3", "liba.so.1", nil)
			s.link("/usr/lib/x86_64-linux-gnu/liba.so.1.2", "../real/liba.so.1.2.3")
			s.link("/usr/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1.2")
			s.prog("/usr/bin/app", interp, []string{"liba.so.1"})
		}, []string{interp + "=0:/lib/x86_64-linux-gnu/ld-test.so.2", "liba.so.1=0:/lib/real/liba.so.1.2.3"}},
		{"a library of another architecture is passed over", func(s *sysroot) {
			s.loader()
			s.lib("/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1", nil)
			s.machine("/lib/x86_64-linux-gnu/liba.so.1", elf.EM_AARCH64)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.prog("/app", interp, []string{"liba.so.1"})
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/usr/lib/liba.so.1"}},
		{"a 32-bit program gets its own folders and 32-bit files only", func(s *sysroot) {
			s.lib("/lib/ld-linux.so.2", "ld-linux.so.2", nil, "-m32")
			s.lib("/lib/i386-linux-gnu/liba.so.1", "liba.so.1", nil)
			s.lib("/lib32/liba.so.1", "liba.so.1", nil, "-m32")
			// libb is there for the host's architecture only.
			s.lib("/lib32/libb.so.1", "libb.so.1", nil, "-m32")
			s.prog("/app", "/lib/ld-linux.so.2", []string{"liba.so.1", "libb.so.1"}, "-m32")
			if err := os.Remove(filepath.Join(s.root, "lib32/libb.so.1")); err != nil {
				s.t.Fatal(err)
			}
			s.lib("/lib/x86_64-linux-gnu/libb.so.1", "libb.so.1", nil)
			s.lib("/usr/lib/libb.so.1", "libb.so.1", nil)
		}, []string{"/lib/ld-linux.so.2=0:/lib/ld-linux.so.2", "liba.so.1=0:/lib32/liba.so.1", "missing libb.so.1 by /app"}},
		{"a foreign program gets none of the host's libraries", func(s *sysroot) {
			s.lib("/lib/ld-linux-aarch64.so.1", "ld-linux-aarch64.so.1", nil)
			s.machine("/lib/ld-linux-aarch64.so.1", elf.EM_AARCH64)
			s.lib("/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1", nil)
			s.lib("/lib/aarch64-linux-gnu/liba.so.1", "liba.so.1", nil)
			s.machine("/lib/aarch64-linux-gnu/liba.so.1", elf.EM_AARCH64)
			s.lib("/usr/lib/libb.so.1", "libb.so.1", nil)
			s.prog("/app", "/lib/ld-linux-aarch64.so.1", []string{"liba.so.1", "libb.so.1"})
			s.machine("/app", elf.EM_AARCH64)
		}, []string{"/lib/ld-linux-aarch64.so.1=0:/lib/ld-linux-aarch64.so.1", "liba.so.1=0:/lib/aarch64-linux-gnu/liba.so.1", "missing libb.so.1 by /app"}},
		{"missing library and interpreter", func(s *sysroot) {
			s.lib("/usr/lib/libgone.so.1", "libgone.so.1", nil)
			s.lib("/usr/lib/liba.so.1", "liba.so.1", []string{"libgone.so.1"})
			s.prog("/app", interp, []string{"liba.so.1"})
			if err := os.Remove(filepath.Join(s.root, "usr/lib/libgone.so.1")); err != nil {
				s.t.Fatal(err)
			}
		}, []string{"liba.so.1=0:/usr/lib/liba.so.1", "missing " + interp + " by /app", "missing libgone.so.1 by /usr/lib/liba.so.1"}},
		{"a loop in DT_NEEDED ends", func(s *sysroot) {
			s.loader()
			// libb is linked first against a stand-in liba, then liba
			// against libb: each needs the other.
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.lib("/usr/lib/libb.so.1", "libb.so.1", []string{"liba.so.1"})
			s.lib("/usr/lib/liba.so.1", "liba.so.1", []string{"libb.so.1"})
			s.prog("/app", interp, []string{"liba.so.1"})
		}, []string{interp + "=0:" + interp, "liba.so.1=0:/usr/lib/liba.so.1", "libb.so.1=0:/usr/lib/libb.so.1"}},
		{"musl: libc is the loader, the path file replaces the defaults", func(s *sysroot) {
			s.lib("/lib/ld-musl-x86_64.so.1", "libc.so", nil)
			s.file("/etc/ld-musl-x86_64.path", "/opt/musl\n/opt/other\n")
			s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
			s.lib("/opt/other/liba.so.1", "liba.so.1", nil)
			s.prog("/app", "/lib/ld-musl-x86_64.so.1", []string{"libc.so", "liba.so.1"})
		}, []string{"/lib/ld-musl-x86_64.so.1=0:/lib/ld-musl-x86_64.so.1", "liba.so.1=0:/opt/other/liba.so.1"}},
		{"musl: a shared object alone is known by its libc", func(s *sysroot) {
			s.lib("/usr/lib/x86_64-linux-musl/libc.so", "libc.so", nil)
			s.file("/etc/ld-musl-x86_64.path", "/usr/lib/x86_64-linux-musl\n")
			s.lib("/usr/lib/x86_64-linux-musl/liba.so.1", "liba.so.1", nil)
			s.lib("/app", "libapp.so", []string{"libc.so", "liba.so.1"})
		}, []string{"liba.so.1=0:/usr/lib/x86_64-linux-musl/liba.so.1"}},
		{"static programs and scripts need nothing", func(s *sysroot) {
			c := filepath.Join(s.src, "static.c")
			s.write(c, "void _start(void) { for (;;); }\n")
			s.gcc("-nostdlib", "-static", "-o", filepath.Join(s.root, "app"), c)
			s.file("/script", "#!/bin/sh\necho hi\n")
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSysroot(t)
			tc.build(s)
			var progs []string
			for _, p := range []string{"/app", "/usr/bin/app", "/opt/app/bin/app", "/script"} {
				if _, err := os.Lstat(filepath.Join(s.root, p)); err == nil {
					progs = append(progs, p)
				}
			}
			cl, err := Resolve([]*Source{{FS: Host{Root: s.root}}}, progs, &Cache{})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(found(cl), "\n")
			if want := strings.Join(sorted(tc.want), "\n"); got != want {
				t.Errorf("closure:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func sorted(xs []string) []string { xs = slices.Clone(xs); slices.Sort(xs); return xs }

// The image's own libraries win; the host fills in only what is missing,
// and $ORIGIN folders of an image file are not looked for on the host.
func TestImageWins(t *testing.T) {
	img, host := newSysroot(t), newSysroot(t)
	host.loader()
	host.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
	host.lib("/usr/lib/libb.so.1", "libb.so.1", nil)
	host.lib("/opt/app/lib/libc.so.9", "libc.so.9", nil)
	img.lib("/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1", nil)
	img.lib("/usr/lib/libb.so.1", "libb.so.1", nil)
	img.lib("/usr/lib/libc.so.9", "libc.so.9", nil)
	if err := os.Remove(filepath.Join(img.root, "usr/lib/libb.so.1")); err != nil {
		t.Fatal(err)
	}
	img.prog("/opt/app/bin/app", interp, []string{"liba.so.1", "libb.so.1", "libc.so.9"}, "-Wl,-rpath,$ORIGIN/../lib")
	if err := os.Remove(filepath.Join(img.root, "usr/lib/libc.so.9")); err != nil {
		t.Fatal(err)
	}
	srcs := []*Source{{FS: Host{Root: img.root}}, {FS: Host{Root: host.root}}}
	cl, err := Resolve(srcs, []string{"/opt/app/bin/app"}, &Cache{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(found(cl), "\n")
	want := strings.Join([]string{
		interp + "=1:" + interp,
		"liba.so.1=0:/lib/x86_64-linux-gnu/liba.so.1",
		"libb.so.1=1:/usr/lib/libb.so.1",
		"missing libc.so.9 by /opt/app/bin/app",
	}, "\n")
	if got != want {
		t.Errorf("closure:\n%s\nwant:\n%s", got, want)
	}
	for _, o := range cl.Objects {
		if !slices.Equal(o.NeededBy, []string{"/opt/app/bin/app"}) {
			t.Errorf("%s needed by %v", o.Name, o.NeededBy)
		}
	}
}
