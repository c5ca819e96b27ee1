package initc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// These tests run the built init as PID 1 of fresh PID and mount
// namespaces, chrooted into a scratch root, with a pseudo-terminal as its
// console: the same start a kernel gives it, minus the VM. A poweroff from
// PID 1 of a PID namespace kills it with SIGINT instead of the machine.

// nsRoot makes a root directory holding the init and, when agent is set,
// the stand-in agent at /bin/kestrel with BusyBox for its /check script.
func nsRoot(t *testing.T, initBin []byte, agent bool) string {
	t.Helper()
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "init"), initBin, 0o755)
	if !agent {
		return root
	}
	out := filepath.Join(root, "bin", "kestrel")
	mustMkdir(t, filepath.Dir(out))
	cmd := exec.Command(hostTool(t, "musl-gcc"), "-static", "-Os", "-o", out, filepath.Join("testdata", "agent.c"))
	cmd.Env = []string{"PATH=" + hostPATH}
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build stand-in agent: %v\n%s", err, msg)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read /bin/busybox (apt-get install busybox-static): %v", err)
	}
	mustWrite(t, filepath.Join(root, "bin", "busybox"), busybox, 0o755)
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	check, err := os.ReadFile(filepath.Join("testdata", "check.sh"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "check"), check, 0o644)
	return root
}

// runInit runs root/init as PID 1 with args and env, its fds 0-2 on a
// pseudo-terminal, and returns what it wrote there (CRs dropped) and how
// it ended.
func runInit(t *testing.T, root string, args, env []string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running the init needs root for mount and PID namespaces: run the tests as root (.ci/run does)")
	}
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.CommandContext(testContext(t), "/init", args...)
	// /init is a path inside the chroot: clear the host lookup's error.
	cmd.Err = nil
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A network namespace of its own: the init brings up its lo.
		Cloneflags:   syscall.CLONE_NEWPID | syscall.CLONE_NEWNET,
		Unshareflags: syscall.CLONE_NEWNS, // Go also makes / private
		Chroot:       root,
	}
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatalf("start init: %v", err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		// Reading the master ends with EIO once the init's side is closed.
		out.ReadFrom(master)
		close(done)
	}()
	err := cmd.Wait()
	<-done
	return strings.ReplaceAll(out.String(), "\r", ""), err
}

func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	var unlock, n uint32
	if err := ioctl(master, syscall.TIOCSPTLCK, &unlock); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	if err := ioctl(master, syscall.TIOCGPTN, &n); err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	return master, slave
}

func ioctl(f *os.File, req uintptr, arg *uint32) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	err = conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(arg)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

func mustWrite(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// poweredOff reports whether err says PID 1 called reboot(RB_POWER_OFF).
func poweredOff(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

func TestInitStartsAgent(t *testing.T) {
	for _, tools := range [][]string{muslTools, gccTools} {
		t.Run(tools[0], func(t *testing.T) {
			root := nsRoot(t, buildWith(t, t.TempDir(), tools...), true)
			// What a kernel passes, with TERM set on its command line.
			out, err := runInit(t, root, []string{"a", "b c"}, []string{"HOME=/", "TERM=vt100"})
			if err != nil {
				t.Fatalf("init and agent: %v\n%s", err, out)
			}
			got := map[string]bool{}
			for _, line := range strings.Split(out, "\n") {
				got[line] = true
			}
			for _, want := range []string{
				"argv0=kestrel", "argv1=a", "argv2=b c",
				"env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"env=HOME=/root", "env=TERM=vt100",
				"pid=1",
				"mount=/dev devtmpfs", "mount=/proc proc", "mount=/sys sysfs",
				"mount=/tmp tmpfs", "mount=/run tmpfs",
				"mode=/tmp 1777", "mode=/run 755",
				"session=1",
				"lo_flags=0x9", // IFF_UP | IFF_LOOPBACK
			} {
				if !got[want] {
					t.Errorf("agent did not report %q", want)
				}
			}
			if got["tty_nr=0"] || !strings.Contains(out, "tty_nr=") {
				t.Error("agent has no controlling terminal")
			}
			if t.Failed() {
				t.Logf("agent output:\n%s", out)
			}
		})
	}
}

func TestInitFailurePowersOff(t *testing.T) {
	musl := buildWith(t, t.TempDir(), muslTools...)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"missing agent", func(*testing.T, string) {},
			"fledge-init: exec /bin/kestrel: No such file or directory\n"},
		{"agent not executable", func(t *testing.T, root string) {
			mustMkdir(t, filepath.Join(root, "bin"))
			mustWrite(t, filepath.Join(root, "bin", "kestrel"), []byte("x"), 0o644)
		}, "fledge-init: exec /bin/kestrel: Permission denied\n"},
		{"mount point is a file", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "proc"), nil, 0o644)
		}, "fledge-init: mount proc on /proc: Not a directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := nsRoot(t, musl, false)
			tc.setup(t, root)
			out, err := runInit(t, root, nil, []string{"HOME=/", "TERM=linux"})
			if out != tc.want {
				t.Errorf("console got %q, want exactly %q", out, tc.want)
			}
			if !poweredOff(err) {
				t.Errorf("init ended with %v, want a poweroff (SIGINT in a PID namespace)", err)
			}
		})
	}
}

// TestInitModuleFailureGoesOn: a module of /etc/fledge/modules that
// cannot be loaded costs one line, and the agent still starts. (Loading a
// real module would load it into the host's kernel, so this stays with a
// file that is missing; the QEMU boot tests load real ones.)
func TestInitModuleFailureGoesOn(t *testing.T) {
	root := nsRoot(t, buildWith(t, t.TempDir(), muslTools...), true)
	mustMkdir(t, filepath.Join(root, "etc", "fledge"))
	mustWrite(t, filepath.Join(root, "etc", "fledge", "modules"), []byte("/lib/modules/9.9/gone.ko\n/lib/modules/9.9/also-gone.ko"), 0o644)
	out, err := runInit(t, root, nil, []string{"HOME=/", "TERM=linux"})
	if err != nil {
		t.Fatalf("init and agent: %v\n%s", err, out)
	}
	for _, want := range []string{
		"fledge-init: load /lib/modules/9.9/gone.ko: No such file or directory\n",
		"fledge-init: load /lib/modules/9.9/also-gone.ko: No such file or directory\n",
		"argv0=kestrel\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}

// TestInitRefusesToRunAsOrdinaryProcess: started by hand on a host, the
// init must neither mount anything nor power the host off.
func TestInitRefusesToRunAsOrdinaryProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "init")
	mustWrite(t, path, buildWith(t, t.TempDir(), muslTools...), 0o755)
	out, err := exec.Command(path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("got %v, want exit status 1", err)
	}
	if !strings.HasPrefix(string(out), "fledge-init: must run as PID 1") {
		t.Errorf("got %q, want the PID 1 refusal", out)
	}
}
