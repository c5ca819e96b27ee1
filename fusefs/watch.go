package fusefs

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/volantvm/fledge/overlay"
)

// settle is how long the watcher waits after a host change for more to
// follow, so a build rewriting a hundred files costs one merge, not a
// hundred.
const settle = 20 * time.Millisecond

// watcher reports host changes behind a writable mount with inotify (the
// fsnotify library: it owns the event loop, buffer parsing and watch
// bookkeeping that inotify needs): the folders the live layers list, the
// paths they map by name, and the edits' stamp, which another process's
// `fledge reset` touches. While it runs, FS lets the kernel cache replies
// for long and invalidates what each new view changed.
type watcher struct {
	fsys  *FS
	w     *fsnotify.Watcher
	stamp string

	mu sync.Mutex
	// dirs are watched whole; names only matter by name, in their parent.
	dirs, names map[string]bool
}

// watch starts watching the host behind f's lower layers and its edits.
func (f *FS) watch() (*watcher, error) {
	stamp, err := f.edits.Stamp()
	if err != nil {
		return nil, err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &watcher{fsys: f, w: fw, stamp: stamp}
	if err := w.sync(); err != nil {
		fw.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// sync makes the watch list what the live layers name now: folders created
// since the last merge get a watch, folders gone lose theirs. It runs
// before every merge, so a change made while the merge walks is reported.
func (w *watcher) sync() error {
	dirs, names := map[string]bool{}, map[string]bool{w.stamp: true}
	for _, l := range w.fsys.stack.Layers {
		if live, ok := l.(overlay.Live); ok {
			ds, ns := live.Watch()
			for _, d := range ds {
				dirs[filepath.Clean(d)] = true
			}
			for _, n := range ns {
				names[filepath.Clean(n)] = true
			}
		}
	}
	// The filter first: a folder's events count from its first one on.
	w.mu.Lock()
	w.dirs, w.names = dirs, names
	w.mu.Unlock()
	want := map[string]bool{}
	for d := range dirs {
		want[d] = true
	}
	for n := range names {
		want[filepath.Dir(n)] = true
	}
	have := map[string]bool{}
	for _, p := range w.w.WatchList() {
		have[p] = true
		if !want[p] {
			// Gone already if the folder was removed; nothing to undo then.
			_ = w.w.Remove(p)
		}
	}
	for p := range want {
		if have[p] {
			continue
		}
		if err := w.w.Add(p); err != nil && !missing(err) {
			return fmt.Errorf("watching %s: %w (raise fs.inotify.max_user_watches, or mount with --poll)", p, err)
		}
	}
	return nil
}

// missing reports a path that vanished between listing and watching: the
// next event (its parent is watched) or merge deals with it.
func missing(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR)
}

// matters reports whether a change at host path p can change the view.
func (w *watcher) matters(p string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dirs[filepath.Dir(p)] || w.dirs[p] || w.names[p]
}

// run turns events into view refreshes until the watcher is closed. A lost
// event (the kernel's queue overflowed) refreshes too, and reads the edits
// again: a merge reads the host whole, so it catches up with whatever was
// missed.
func (w *watcher) run() {
	var due <-chan time.Time
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if ev.Name == w.stamp {
				// Another process reset edits: read them again.
				w.fsys.edits.Reload()
			}
			if due == nil && w.matters(ev.Name) {
				due = time.After(settle)
			}
		case _, ok := <-w.w.Errors:
			if !ok {
				return
			}
			w.fsys.edits.Reload()
			if due == nil {
				due = time.After(settle)
			}
		case <-due:
			due = nil
			w.fsys.hostChanged()
		}
	}
}

func (w *watcher) close() { w.w.Close() }
