package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A mount that cannot be made says what was found, in one line: here, as
// root, that the mountpoint is a regular file.
func TestMountOnAFileSaysSo(t *testing.T) {
	needRoot(t)
	dir := copyExample(t, "default")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runMount(t, dir, file)
	msg := strings.TrimSuffix(r.stderr, "\n")
	if r.code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, file+" is a regular file, not a folder") || strings.Contains(msg, "root") {
		t.Errorf("fledge mount on a regular file: exit %d, stderr:\n%s\nwant one line saying %s is a regular file", r.code, r.stderr, file)
	}
}

// userMountScript mounts $ART at $MNT as the user it runs as, lists the
// mount, unmounts it with fledge umount and prints fledge mount's stderr.
const userMountScript = `: >"$LOG"
"$FLEDGE" mount "$@" "$ART" "$MNT" 2>"$LOG" & pid=$!
i=0
until grep -q "mounted at" "$LOG"; do
	if ! kill -0 $pid 2>/dev/null || [ $i -gt 300 ]; then kill $pid 2>/dev/null; wait $pid; cat "$LOG"; exit 1; fi
	i=$((i+1)); sleep 0.1
done
ls "$MNT/bin/busybox" && "$FLEDGE" umount "$MNT"; rc=$?
wait $pid
cat "$LOG"
exit $rc`

// mountAsNobody runs userMountScript as nobody (see asNobody).
func mountAsNobody(t *testing.T, devMode os.FileMode, args ...string) (string, error) {
	t.Helper()
	dir := copyExample(t, "default")
	work := openTempDir(t)
	art := filepath.Join(work, "a.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	return asNobody(t, devMode, `exec setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c "$SCRIPT" sh "$@"`,
		[]string{"SCRIPT=" + userMountScript, "ART=" + art}, args...)
}

// openTempDir is a t.TempDir that every user may read.
func openTempDir(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	for _, d := range []string{filepath.Dir(work), work} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return work
}

// nobodyHome is an empty folder of nobody's, for runAsNobody.
func nobodyHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(openTempDir(t), "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return home
}

// runAsNobody makes cmd run as nobody (uid and gid 65534, no
// supplementary groups) with HOME, TMPDIR, XDG_CACHE_HOME and
// XDG_STATE_HOME in home (see nobodyHome), never in the root's folders
// TestMain sets.
func runAsNobody(cmd *exec.Cmd, home string) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "HOME="+home, "TMPDIR="+home,
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_STATE_HOME="+filepath.Join(home, "state"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
}

// asNobody runs the shell script setup as root in a mount namespace of
// its own, where /dev/fuse is a device node of the given mode and
// /etc/fuse.conf is empty: the machine's own are left as they are. The
// script finds $FLEDGE, a folder of nobody's as $HOME with an empty
// folder $MNT in it, $LOG there, and env.
func asNobody(t *testing.T, devMode os.FileMode, setup string, env []string, args ...string) (string, error) {
	t.Helper()
	needRoot(t)
	needTool(t, "unshare", "util-linux")
	needTool(t, "setpriv", "util-linux")
	needTool(t, "fusermount3", "fuse3")
	work := openTempDir(t)
	user := filepath.Join(work, "user")
	for _, d := range []string{user, filepath.Join(user, "mnt")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	dev, conf := filepath.Join(work, "fuse"), filepath.Join(work, "fuse.conf")
	if err := syscall.Mknod(dev, syscall.S_IFCHR|uint32(devMode), 10<<8|229); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dev, devMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setup = `mount --bind "$DEV" /dev/fuse && mount --bind "$CONF" /etc/fuse.conf && ` + setup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "--propagation", "private", "/bin/sh", "-c", setup, "sh"}, args...)...)
	cmd.Dir = "/"
	cmd.Env = append(append(os.Environ(), "DEV="+dev, "CONF="+conf, "FLEDGE="+fledgeBin,
		"MNT="+filepath.Join(user, "mnt"), "LOG="+filepath.Join(user, "log"),
		"HOME="+user, "TMPDIR="+user, "XDG_CACHE_HOME="+filepath.Join(user, "cache"),
		"XDG_STATE_HOME="+filepath.Join(user, "state")), env...)
	// The whole group goes on a timeout: the namespace, and the mount in
	// it, last as long as one of its processes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("running as nobody did not finish within a minute:\n%s", out)
	}
	return string(out), err
}

// Where /dev/fuse is open to all, an ordinary user mounts (through
// fusermount3; by default only that user sees the mount, which needs no
// user_allow_other) and unmounts with fledge umount.
func TestMountAsUser(t *testing.T) {
	out, err := mountAsNobody(t, 0o666)
	if err != nil || !strings.Contains(out, "mounted at") {
		t.Fatalf("mount as nobody with /dev/fuse crw-rw-rw-: %v\n%s", err, out)
	}
}

// An ordinary user's mount that cannot be made says what was found: the
// mode of /dev/fuse, or the missing user_allow_other for --share=read.
func TestMountAsUserSaysWhatItFound(t *testing.T) {
	for _, c := range []struct {
		name string
		mode os.FileMode
		args []string
		want []string
	}{
		{"device closed", 0o600, nil, []string{"/dev/fuse is crw------- (owner 0, group 0), which uid 65534 may not open"}},
		{"share read", 0o666, []string{"--share=read"}, []string{"user_allow_other", "/etc/fuse.conf", "--share=none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := mountAsNobody(t, c.mode, c.args...)
			msg := strings.TrimSuffix(out, "\n")
			ok := err != nil && !strings.Contains(msg, "\n") && !strings.Contains(msg, "only open to root")
			for _, w := range c.want {
				ok = ok && strings.Contains(msg, w)
			}
			if !ok {
				t.Errorf("mount as nobody: %v\n%s\nwant one line with %q", err, out, c.want)
			}
		})
	}
}
