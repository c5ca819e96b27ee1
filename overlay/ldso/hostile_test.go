package ldso

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
		cl, err := Resolve([]*Source{{Name: "the host", FS: Host{Root: s.root}}}, []string{"/app"}, &Cache{})
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
