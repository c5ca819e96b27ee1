package ldso

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// TestHugeRunpathEnds: a hostile program may carry a RUNPATH of a hundred
// thousand folders. The loader tries each once per needed name; resolving
// must cost that and no more (it was quadratic in the folders, hours for
// such a program). The limit is a hang detector a hundred times above what
// the linear work takes, not a performance target.
func TestHugeRunpathEnds(t *testing.T) {
	s := newSysroot(t)
	s.loader()
	dirs := make([]string, 100000)
	for i := range dirs {
		dirs[i] = fmt.Sprintf("/d%d", i)
	}
	var needs []string
	for i := range 4 {
		n := fmt.Sprintf("libn%d.so", i)
		s.lib("/usr/lib/"+n, n, nil)
		needs = append(needs, n)
	}
	// Through a response file: one argument may not exceed 128 KiB.
	rsp := filepath.Join(s.src, "rsp")
	s.write(rsp, "-Wl,--enable-new-dtags,-rpath,"+strings.Join(dirs, ":"))
	s.prog("/app", interp, needs, "@"+rsp)
	done := make(chan *Closure, 1)
	go func() {
		cl, err := Resolve([]*Source{{FS: Host{Root: s.root}}}, []string{"/app"}, &Cache{})
		if err != nil {
			t.Error(err)
		}
		done <- cl
	}()
	select {
	case cl := <-done:
		if len(cl.Objects) != len(needs)+1 || len(cl.Missing) != 0 {
			t.Errorf("closure %v", found(cl))
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("resolving a program with 100000 RUNPATH folders did not end in 2 minutes")
	}
}

// TestInterpAsTheKernelReadsIt: the kernel execs the first PT_INTERP up to
// its first NUL, and refuses a program whose PT_INTERP does not end in one.
func TestInterpAsTheKernelReadsIt(t *testing.T) {
	s := newSysroot(t)
	s.prog("/app", interp+"XXXX", nil)
	b, err := os.ReadFile(filepath.Join(s.root, "app"))
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte(interp+"XXXX\x00"))
	if at < 0 {
		t.Fatal("the interpreter path is not in the program")
	}
	read := func(b []byte) *ELF {
		t.Helper()
		e, err := ReadELF(bytes.NewReader(b))
		if err != nil || e == nil {
			t.Fatalf("ReadELF: %v, %v", e, err)
		}
		return e
	}
	cut := slices.Clone(b)
	cut[at+len(interp)] = 0
	if e := read(cut); e.Interp != interp || e.Damaged {
		t.Errorf("PT_INTERP %q: interpreter %q (damaged %v), want %q", interp+"\x00XXX", e.Interp, e.Damaged, interp)
	}
	open := slices.Clone(b)
	open[at+len(interp)+4] = 'X'
	if e := read(open); !e.Damaged {
		t.Errorf("PT_INTERP without a NUL: interpreter %q, want the program refused", e.Interp)
	}
}

// countingFS fails the test when more files are opened than a bound.
type countingFS struct {
	FS
	t     *testing.T
	opens int
	max   int
}

func (c *countingFS) Open(p string) (Reader, error) {
	if c.opens++; c.opens > c.max {
		c.t.Fatalf("%d files opened reading ld.so.conf, the last %s", c.opens, p)
	}
	return c.FS.Open(p)
}

// TestLdSoConfIncludeTreeEnds: an image's ld.so.conf is the rootfs
// author's input. Includes through two symlinks to their own folder name
// the same file by ever longer paths, a tree of 2^40 reads before the
// symlink limit ends it; reading stops at a bound instead.
func TestLdSoConfIncludeTreeEnds(t *testing.T) {
	s := newSysroot(t)
	s.file("/etc/ld.so.conf", "/opt/lib\ninclude a/ld.so.conf b/ld.so.conf\n")
	s.link("/etc/a", ".")
	s.link("/etc/b", ".")
	fsys := &countingFS{FS: Host{Root: s.root}, t: t, max: 10 * maxConfFiles}
	dirs := ldSoConf(fsys)
	if len(dirs) == 0 || dirs[0] != "/opt/lib" {
		t.Errorf("folders %v, want /opt/lib first", dirs[:min(len(dirs), 3)])
	}
}

// TestNeededWithoutSectionHeaders: the loader finds DT_NEEDED through the
// program headers (PT_DYNAMIC); section headers are for linkers, and a
// program stripped of them (sstrip, or a crafted one) runs all the same.
// Its libraries must be found just as well.
func TestNeededWithoutSectionHeaders(t *testing.T) {
	s := newSysroot(t)
	s.lib("/usr/lib/liba.so.1", "liba.so.1", nil)
	s.lib("/usr/lib/libb.so.1", "libb.so.1", nil)
	s.prog("/app", interp, []string{"liba.so.1", "libb.so.1"}, "-Wl,--enable-new-dtags,-rpath,/opt/x:$ORIGIN/lib")
	b, err := os.ReadFile(filepath.Join(s.root, "app"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadELF(bytes.NewReader(b))
	if err != nil || want == nil || len(want.Needed) != 2 {
		t.Fatalf("the program as linked: %+v, %v", want, err)
	}
	// ELF64: e_shoff at 0x28, e_shnum at 0x3c, e_shstrndx at 0x3e.
	clear(b[0x28:0x30])
	clear(b[0x3c:0x40])
	got, err := ReadELF(bytes.NewReader(b))
	if err != nil || got == nil {
		t.Fatalf("ReadELF: %v, %v", got, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("without section headers:\n%+v\nwant:\n%+v", *got, *want)
	}
}

// FuzzReadELF feeds arbitrary files to the header reader, seeded with a
// program gcc links, 64- and 32-bit: it may call them damaged or not ELF,
// but must not panic.
func FuzzReadELF(f *testing.F) {
	dir := f.TempDir()
	c := filepath.Join(dir, "main.c")
	if err := os.WriteFile(c, []byte("int _start(void) { return 0; }\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, flags := range [][]string{nil, {"-m32"}} {
		out := filepath.Join(dir, "prog")
		args := append([]string{"-nostdlib", "-fPIE", "-pie", "-o", out, c, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib,-soname,libx.so.1,--dynamic-linker=" + interp}, flags...)
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			f.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadELF(bytes.NewReader(b))
	})
}

// TestMissingNamesFewFolders: the line naming a missing library stays a
// line when the program's RUNPATH holds thousands of folders.
func TestMissingNamesFewFolders(t *testing.T) {
	m := Missing{Program: "/app", Needer: "/app", Name: "liba.so.1"}
	for i := range 5000 {
		m.Looked = append(m.Looked, fmt.Sprintf("/d%d", i))
	}
	msg := m.String("not in the image")
	if want := "(looked in /d0, /d1, /d2, /d3, /d4, /d5, /d6, /d7 and 4992 more)"; !strings.HasSuffix(msg, want) {
		t.Errorf("message %.200q..., want it to end %q", msg, want)
	}
}

// TestUnreadableProgramNamed: a mapped program that cannot be read when
// the closure is computed (removed on the host meanwhile, as a rebuild
// does) fails naming the program in the image, not only the host file.
func TestUnreadableProgramNamed(t *testing.T) {
	app := newSysroot(t)
	app.prog("/app", interp, nil)
	host := filepath.Join(app.root, "app")
	v, err := (&overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(), overlay.Mappings(app.root, []overlay.Mapping{{Host: host, Guest: "/usr/bin/app"}})}}).View()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(host); err != nil {
		t.Fatal(err)
	}
	_, err = Resolve([]*Source{{FS: Image{V: v}}}, []string{"/usr/bin/app"}, &Cache{})
	if err == nil || !strings.HasPrefix(err.Error(), "/usr/bin/app: ") {
		t.Errorf("err = %v, want it to start with the program's path", err)
	}
}
