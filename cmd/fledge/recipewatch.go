package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/fusefs"
)

// recipeSettle is how long the recipe watcher waits after an event for an
// editor's save (write, rename, chmod) to finish.
const recipeSettle = 100 * time.Millisecond

// watchRecipe prints a notice on out each time the recipe file changes
// while the mount at mnt serves: the mount keeps the stack it was built
// with, so a new mapping or key shows only after a remount. It watches the
// recipe's folder with inotify (editors replace the file by renaming a new
// one over it) and compares contents, so a save that changes nothing says
// nothing. Closing the returned watcher stops it. A folder inotify cannot
// watch (NFS, 9p) gets no notice.
func watchRecipe(file, mnt string, out io.Writer) (*fsnotify.Watcher, error) {
	was, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		w.Close()
		return nil, err
	}
	go func() {
		var due <-chan time.Time
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Name == file {
					due = time.After(recipeSettle)
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			case <-due:
				due = nil
				// A recipe being replaced or gone has nothing to compare.
				now, err := os.ReadFile(file)
				if err != nil || bytes.Equal(now, was) {
					continue
				}
				was = now
				fmt.Fprintf(out, "fledge: %s changed; this mount still shows the image as it was when mounted: remount to see the change (`%s`, then fledge mount again)\n",
					inspect.Escape(file), fusefs.UmountCommand(mnt))
			}
		}
	}()
	return w, nil
}
