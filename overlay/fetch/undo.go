package fetch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// undoList remembers what a cache operation created so that a failure can
// put the cache back exactly as it was, including directories that did
// not exist before.
type undoList struct {
	paths []string // created, in creation order
	done  bool
}

// mkdirs creates dir and its missing parents, remembering each one.
func (u *undoList) mkdirs(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		_, err := os.Lstat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		switch {
		case err == nil:
			u.paths = append(u.paths, missing[i])
		case !errors.Is(err, fs.ErrExist): // another fledge made it meanwhile
			return err
		}
	}
	return nil
}

// createTemp makes a temporary file in dir, creating dir if needed.
func (u *undoList) createTemp(dir string) (*os.File, error) {
	if err := u.mkdirs(dir); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "fetch-*")
	if err != nil {
		return nil, err
	}
	u.paths = append(u.paths, f.Name())
	return f, nil
}

// commit keeps what was created.
func (u *undoList) commit() { u.done = true }

// run removes what was created, newest first, unless committed. os.Remove
// leaves a directory alone if another process has put something in it.
func (u *undoList) run() {
	if u.done {
		return
	}
	for i := len(u.paths) - 1; i >= 0; i-- {
		os.Remove(u.paths[i])
	}
}
