package main

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountProc is a running `fledge mount`.
type mountProc struct {
	cmd *exec.Cmd
	mnt string
	mu  sync.Mutex
	log strings.Builder
}

// startMount runs `fledge mount ARGS MNT` in dir and waits until it serves.
func startMount(t *testing.T, dir, mnt string, args ...string) *mountProc {
	t.Helper()
	return startMountEnv(t, dir, mnt, nil, args...)
}

// startMountEnv is startMount with env added to the environment.
func startMountEnv(t *testing.T, dir, mnt string, env []string, args ...string) *mountProc {
	t.Helper()
	needRoot(t)
	needTool(t, "fusermount3", "fuse3")
	m := &mountProc{mnt: mnt}
	m.cmd = exec.Command(fledgeBin, append(append([]string{"mount"}, args...), mnt)...)
	m.cmd.Dir = dir
	m.cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+cacheDir), env...)
	stderr, err := m.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go m.follow(stderr, ready)
	t.Cleanup(func() { m.stop(t) })
	select {
	case ok := <-ready:
		if !ok {
			m.cmd.Wait()
			t.Fatalf("fledge mount exited before serving:\n%s", m.output())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("fledge mount did not serve within 2 minutes:\n%s", m.output())
	}
	return m
}

func (m *mountProc) follow(r io.Reader, ready chan<- bool) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		m.mu.Lock()
		m.log.WriteString(sc.Text() + "\n")
		m.mu.Unlock()
		if !sent && strings.Contains(sc.Text(), "mounted at") {
			ready <- true
			sent = true
		}
	}
	if !sent {
		ready <- false
	}
}

func (m *mountProc) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// stop unmounts (lazily, so a failed test cannot hang here; a mount left
// stale by a killed process goes too) and reaps.
func (m *mountProc) stop(t *testing.T) {
	syscall.Unmount(m.mnt, syscall.MNT_DETACH)
	if m.cmd.ProcessState == nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	}
}

// umount runs `fledge umount` and waits for the mount process to exit.
func (m *mountProc) umount(t *testing.T) {
	t.Helper()
	mustFledge(t, "/", nil, "umount", m.mnt)
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fledge mount exited with %v after umount:\n%s", err, m.output())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("fledge mount still running 10s after umount:\n%s", m.output())
	}
}

func newMountpoint(t *testing.T) string {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// tree describes every entry below root the way describeHost does.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.Clean("/"+rel)] = describeHost(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// The acceptance round trip: edit through the mount, unmount, pack, and
// GNU cpio extracts exactly the tree the mount showed.
func TestMountRoundTrip(t *testing.T) {
	needTool(t, "cpio", "cpio")
	dir := copyExample(t, "default")
	hostBefore := tree(t, dir)
	m := startMount(t, dir, newMountpoint(t))
	p := func(s string) string { return filepath.Join(m.mnt, s) }

	if err := os.WriteFile(p("etc/hostname"), []byte("fledge\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("bin/ls")); err != nil {
		t.Fatalf("deleting a BusyBox applet link: %v", err)
	}
	if err := os.Chmod(p("usr/bin/hello"), 0o700); err != nil {
		t.Fatalf("chmod of a mapped file: %v", err)
	}
	if err := os.Rename(p("usr/sbin"), p("var/sbin")); err != nil {
		t.Fatalf("moving a directory: %v", err)
	}
	shown := tree(t, m.mnt)
	m.umount(t)

	art := filepath.Join(t.TempDir(), "rt.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	gnuCPIO(t, art, x, "-idm", "--quiet", "--no-absolute-filenames")
	if d := diffMaps(shown, tree(t, x)); d != "" {
		t.Errorf("extracted tree differs from what the mount showed (- mount, + extracted):\n%s", d)
	}
	for _, gone := range []string{"/bin/ls", "/usr/sbin"} {
		if _, ok := shown[gone]; ok {
			t.Errorf("%s still shown after the edit", gone)
		}
	}
	if !strings.HasPrefix(shown["/usr/bin/hello"], "100700 ") || shown["/etc/hostname"] == "" || shown["/var/sbin"] == "" {
		t.Errorf("edits missing from the mount: hello %q hostname %q var/sbin %q", shown["/usr/bin/hello"], shown["/etc/hostname"], shown["/var/sbin"])
	}
	after := tree(t, dir)
	for k, v := range hostBefore {
		if after[k] != v {
			t.Errorf("host file %s changed: %s -> %s", k, v, after[k])
		}
	}
}

// An artifact mounted --read-only shows what GNU cpio extracts from it and
// takes no changes.
func TestMountArtifact(t *testing.T) {
	needTool(t, "cpio", "cpio")
	dir := copyExample(t, "default")
	art := filepath.Join(t.TempDir(), "a.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	m := startMount(t, "/", newMountpoint(t), "--read-only", art)
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	gnuCPIO(t, art, x, "-idm", "--quiet", "--no-absolute-filenames")
	if d := diffMaps(tree(t, x), tree(t, m.mnt)); d != "" {
		t.Errorf("mounted artifact differs from GNU cpio's extraction (- cpio, + mount):\n%s", d)
	}
	err := os.WriteFile(filepath.Join(m.mnt, "etc", "x"), nil, 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing into a mounted artifact: %v, want EROFS", err)
	}
	m.umount(t)
}

// A mountpoint inside a mapped folder is refused: building the view would
// walk the mapped folder into the mount, whose every request waits for
// that view, and the mount would hang on its first use.
func TestMountRefusesMountpointInsideMappedFolder(t *testing.T) {
	needRoot(t)
	dir := copyExample(t, "default")
	mnt := filepath.Join(dir, "appdir", "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\"./appdir\" = \"/opt/app\"\n")
	f.Close()
	t.Cleanup(func() { fledge(t, dir, nil, "umount", "--lazy", mnt) })
	cmd := exec.Command(fledgeBin, "mount", mnt)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "inside the mapped folder") {
			t.Errorf("fledge mount inside a mapped folder: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		abortFUSE(t, mnt)
		cmd.Process.Kill()
		<-done
		t.Errorf("fledge mount accepted a mountpoint inside a mapped folder:\n%s", out.String())
	}
}

// abortFUSE aborts the FUSE connection mounted at mnt, which frees
// processes stuck on a server that can no longer answer. The connection
// is named by the mount's device minor, the third field of mountinfo.
func abortFUSE(t *testing.T, mnt string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mnt && strings.HasPrefix(f[2], "0:") {
			conn := filepath.Join("/sys/fs/fuse/connections", strings.TrimPrefix(f[2], "0:"), "abort")
			if err := os.WriteFile(conn, []byte("1"), 0o200); err != nil {
				t.Errorf("aborting the FUSE connection of %s: %v", mnt, err)
			}
		}
	}
}
