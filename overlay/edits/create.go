package edits

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

// CreateFile adds the new regular file ent, as Create does, and returns it
// open for reading and writing: open(2) with O_CREAT through the mount,
// which tar x and cp -r do for every file. Where the name is free in the
// layer (nothing there, not even a whiteout), the file is made in place
// with O_EXCL and its owner, mode and time are set on the descriptor:
// there is no lower object a half-made file could bring back or hide
// wrongly, and an empty file the caller never got is all a crash can
// leave. Otherwise it is made the way Create makes it, and opened. A zero
// ent.MTime leaves the file the times of its making. The file's fstat comes
// with it.
func (e *Edits) CreateFile(v *overlay.View, ent overlay.Entry) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	release, err := e.begin()
	if err != nil {
		return nil, st, err
	}
	defer release()
	// Whatever happens, the layer's tree learns of it: the made file
	// alone, or, the way any change does, what is at and above the path.
	recorded := false
	defer func() {
		if !recorded {
			e.touched(ent.Path)
		}
	}()
	if _, ok := v.Get(ent.Path); ok {
		return nil, st, fmt.Errorf("create %s: %w", ent.Path, syscall.EEXIST)
	}
	d, name, err := e.parentOf(v, ent.Path)
	if err != nil {
		return nil, st, err
	}
	defer d.close()
	taken := false
	if e.oldWhiteout(name) {
		_, taken, err = d.stat(whiteoutPrefix + name)
		if err != nil {
			return nil, st, err
		}
	}
	var f *os.File
	if !taken {
		// O_EXCL finds out whether the name is free: a whiteout or any
		// other object there makes it fail with EEXIST.
		f, err = d.openFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		taken = errors.Is(err, syscall.EEXIST)
		if err != nil && !taken {
			return nil, st, fmt.Errorf("create %s: %w", ent.Path, err)
		}
	}
	if taken {
		if err := e.create(v, ent); err != nil {
			return nil, st, err
		}
		if f, err = d.openFile(name, os.O_RDWR, 0); err != nil {
			return nil, st, err
		}
		if _, err = overlay.StatRegular(f, ent.Path); err == nil {
			st, err = e.fstat(int(f.Fd()))
		}
		if err != nil {
			f.Close()
			return nil, st, err
		}
		return f, st, nil
	}
	err = e.fileMeta(d, name, f, &ent)
	if err == nil {
		st, err = e.fstat(int(f.Fd()))
	}
	if err != nil {
		f.Close()
		_ = unix.Unlinkat(int(d), name, 0)
		return nil, st, fmt.Errorf("create %s: %w", ent.Path, err)
	}
	e.touchedFile(d, name, ent.Path, &st, true)
	recorded = true
	return f, st, nil
}

// Add is Create for a process that serves no mount of the layer (fledge
// mknod), while a mount in another process may serve it: like Reset it
// waits for the changes in progress in any process and keeps new ones out
// while it works, and it touches the Stamp, so that mount reads the edits
// again and shows ent. v is the view the caller read, with the layer on
// top.
func (e *Edits) Add(v *overlay.View, ent overlay.Entry) error {
	f, err := e.openLock()
	if err != nil {
		return err
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_EX); err != nil {
		return fmt.Errorf("edits lock %s: %w", f.Name(), err)
	}
	e.op.Lock()
	defer e.op.Unlock()
	defer e.touched(ent.Path)
	if err := e.create(v, ent); err != nil {
		return err
	}
	return e.stamp()
}
