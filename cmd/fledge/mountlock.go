package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/fusefs"
)

// mountLockName is the file in the workspace that a mount of the recipe
// holds locked (flock) while it serves.
//
// Each mount keeps the edits it has read in memory and follows its own
// changes only: a second mount of the same workspace would show neither
// the first one's changes nor its deletions, and the two would write over
// each other. So a workspace has one mount at a time. The lock, not the
// file, says whether it is taken: the kernel drops a flock when its holder
// dies, so a killed mount blocks nobody. The holder writes its pid and
// mountpoint into the file for the message that refuses the next one.
//
// Commands that read or reset the edits while the mount runs need no such
// lock: they take the edits' own lock, and a reset tells the mount to read
// the edits again (see overlay.Edits.Stamp).
const mountLockName = "mount.lock"

// lockWorkspace takes the mount lock of the workspace ws (a recipe's
// .fledge, or an artifact's workspace) for a mount at mnt, or says which
// mount holds it. Closing the file releases it.
func lockWorkspace(ws, mnt string) (*os.File, error) {
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	p := filepath.Join(ws, mountLockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mount lock: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder, _ := io.ReadAll(io.LimitReader(f, 64<<10))
		f.Close()
		return nil, refuseSecondMount(ws, string(holder))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mount lock %s: %w", p, err)
	}
	abs, err := filepath.Abs(mnt)
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt([]byte(fmt.Sprintf("%d\n%s\n", os.Getpid(), abs)), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mount lock %s: %w", p, err)
	}
	return f, nil
}

// refuseSecondMount is the error for a workspace another mount holds,
// naming that mount from what it wrote in the lock file ("PID\nMOUNTPOINT\n").
func refuseSecondMount(ws, holder string) error {
	pid, mnt, ok := strings.Cut(strings.TrimSuffix(holder, "\n"), "\n")
	if _, err := strconv.Atoi(pid); err != nil || !ok || mnt == "" {
		// The holder took the lock and has not written its name yet.
		return fmt.Errorf("the workspace %s is being mounted by another fledge mount; two mounts of one workspace would not see each other's changes: use that mount, or unmount it first", ws)
	}
	return fmt.Errorf("the workspace %s is already mounted at %s (fledge pid %s); two mounts of one workspace would not see each other's changes: use that mount, or unmount it first with `%s`",
		ws, inspect.Escape(mnt), pid, fusefs.UmountCommand(mnt))
}
