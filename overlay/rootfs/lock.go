package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockState takes the embedded BuildKit state directory for this process.
// Two BuildKit instances on one state directory corrupt its databases, so a
// second fledge is refused with the holder's pid instead. The lock is an
// flock: the kernel drops it when the holder exits, however it exits.
func lockState(root string) (unlock func() error, err error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("buildkit state dir: %w (set FLEDGE_STATE_DIR to a writable directory)", err)
	}
	p := filepath.Join(root, "fledge.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("buildkit state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("buildkit state %s is in use by fledge process %s: wait for that build to finish, or set FLEDGE_STATE_DIR to another directory", root, describeHolder(holder))
		}
		return nil, fmt.Errorf("buildkit state lock %s: %w", p, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		f.Truncate(0)
		return f.Close()
	}, nil
}

func describeHolder(b []byte) string {
	pid := strings.TrimSpace(string(b))
	if pid == "" {
		return "(pid unknown)"
	}
	return pid
}
