package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A second mount of a workspace that is mounted already is refused in one
// line naming the first mount, its pid and how to unmount it; once that
// mount is gone, killed or not, the workspace mounts again.
func TestSecondMountOfAWorkspaceIsRefused(t *testing.T) {
	dir := copyExample(t, "default")
	first := startMount(t, dir, newMountpoint(t))
	second := newMountpoint(t)
	r := runMount(t, dir, second)
	msg := strings.TrimSuffix(r.stderr, "\n")
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if r.code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, first.mnt) || !strings.Contains(msg, pid) || !strings.Contains(msg, "fledge umount "+first.mnt) {
		t.Fatalf("second mount of one workspace: exit %d, stderr:\n%s\nwant one line naming %s, pid %s and `fledge umount %s`", r.code, r.stderr, first.mnt, pid, first.mnt)
	}
	// A dead holder blocks nobody: the kernel drops its lock.
	first.cmd.Process.Kill()
	first.cmd.Wait()
	startMount(t, dir, second).umount(t)
}

// runMount runs `fledge mount ARGS` in dir and expects it to exit (with
// anything) within 30 seconds; a mount that serves instead is unmounted.
func runMount(t *testing.T, dir string, args ...string) result {
	t.Helper()
	t.Cleanup(func() { syscall.Unmount(args[len(args)-1], syscall.MNT_DETACH) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fledgeBin, append([]string{"mount"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("fledge mount %v still running after 30s (it was expected to refuse):\n%s", args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}
