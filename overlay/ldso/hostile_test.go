package ldso

import (
	"fmt"
	"path/filepath"
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
