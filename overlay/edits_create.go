package overlay

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CreateFile adds the new regular file ent, as Create does, and returns it
// open for reading and writing: open(2) with O_CREAT through the mount,
// which tar x and cp -r do for every file. Where the name is free in the
// layer (nothing there, not even a whiteout), the file is made in place
// with O_EXCL and its owner, mode and time are set on the descriptor:
// there is no lower object a half-made file could bring back or hide
// wrongly, and an empty file the caller never got is all a crash can
// leave. Otherwise it is made the way Create makes it, and opened.
func (e *Edits) CreateFile(v *View, ent Entry) (*os.File, error) {
	release, err := e.begin()
	if err != nil {
		return nil, err
	}
	defer release()
	defer e.touched(ent.Path)
	if _, ok := v.Get(ent.Path); ok {
		return nil, fmt.Errorf("create %s: %w", ent.Path, syscall.EEXIST)
	}
	d, name, err := e.parentOf(v, ent.Path)
	if err != nil {
		return nil, err
	}
	defer d.close()
	_, taken, err := d.stat(name)
	if err != nil {
		return nil, err
	}
	if !taken && e.oldWhiteout(name) {
		_, taken, err = d.stat(whiteoutPrefix + name)
		if err != nil {
			return nil, err
		}
	}
	if taken {
		if err := e.create(v, ent); err != nil {
			return nil, err
		}
		return d.openFile(name, os.O_RDWR, 0)
	}
	f, err := d.openFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", ent.Path, err)
	}
	if err := d.fileMeta(name, f, &ent); err != nil {
		f.Close()
		_ = unix.Unlinkat(int(d), name, 0)
		return nil, fmt.Errorf("create %s: %w", ent.Path, err)
	}
	return f, nil
}

// fileMeta gives name in d, open as f, the owner, mode and mtime (now if
// none) of ent; owner first, since chown clears setuid and setgid bits.
func (d dirFD) fileMeta(name string, f *os.File, ent *Entry) error {
	if err := unix.Fchown(int(f.Fd()), ent.UID, ent.GID); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(int(f.Fd()), ent.UnixMode()&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	mtime := ent.MTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	ts := []unix.Timespec{timespec(mtime), timespec(mtime)}
	if err := unix.UtimesNanoAt(int(d), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}
