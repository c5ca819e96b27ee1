package fusefs

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// When a new mapped folder cannot be watched (the inotify limit is
// reached), the mount warns, drops what the kernel cached on the promise of
// being told, and polls: host changes still show within a second.
//
// The limit is the real one, fs.inotify.max_user_watches, set to what
// root's processes hold right now for the moment the test needs it.
func TestWatchLimitFallsBackToPolling(t *testing.T) {
	w := setupWorkspace(t)
	var mu sync.Mutex
	var warned []string
	w.opts.Warn = func(msg string) {
		mu.Lock()
		warned = append(warned, msg)
		mu.Unlock()
	}
	w.mount(t)
	if !w.fsys.watching.Load() {
		t.Fatal("not watching after mount")
	}
	if got, _ := os.ReadFile(w.path("opt/data/a.txt")); string(got) != "alpha\n" {
		t.Fatalf("before: %q", got)
	}

	const limit = "/proc/sys/fs/inotify/max_user_watches"
	old, err := os.ReadFile(limit)
	must(t, err)
	restore := sync.OnceFunc(func() { must(t, os.WriteFile(limit, old, 0)) })
	t.Cleanup(restore)
	must(t, os.WriteFile(limit, []byte(strconv.Itoa(rootWatches(t))), 0))
	must(t, os.Mkdir(filepath.Join(w.hostDir, "unwatchable"), 0o755))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(warned)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no warning 5s after a folder could not be watched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	restore()
	if w.fsys.watching.Load() {
		t.Error("still watching after the warning")
	}
	mu.Lock()
	if len(warned) != 1 || !strings.Contains(warned[0], "max_user_watches") || !strings.Contains(warned[0], "polled") {
		t.Errorf("warnings: %q", warned)
	}
	mu.Unlock()

	// The kernel had a.txt cached for long; polling, the change shows, though
	// nothing but a.txt is asked for.
	must(t, os.WriteFile(filepath.Join(w.hostDir, "a.txt"), []byte("alpha, longer\n"), 0o644))
	deadline = time.Now().Add(time.Second)
	for {
		fi, err := os.Stat(w.path("opt/data/a.txt"))
		if err == nil && fi.Size() == 14 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("polling: after 1s a.txt is %v (%v)", fi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And the folder that could not be watched is polled too.
	must(t, os.WriteFile(filepath.Join(w.hostDir, "unwatchable", "u.txt"), []byte("u"), 0o644))
	deadline = time.Now().Add(time.Second)
	for {
		_, err := os.Stat(w.path("opt/data/unwatchable/u.txt"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("polling: after 1s u.txt: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rootWatches counts the inotify watches root's processes hold, which is
// what max_user_watches limits.
func rootWatches(t *testing.T) int {
	procs, err := filepath.Glob("/proc/[0-9]*/fdinfo/*")
	must(t, err)
	n := 0
	for _, p := range procs {
		if st, err := os.Stat(filepath.Dir(filepath.Dir(p))); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "inotify wd:") {
				n++
			}
		}
		f.Close()
	}
	return n
}
