package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// These tests run real BuildKit with real runc, as root, offline: every
// Dockerfile starts FROM scratch and brings its own static BusyBox.

const offlineDockerfile = `FROM scratch AS other
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo other > /other-stage"]

FROM scratch AS final
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG GREETING=unset
RUN mkdir -p /etc /lib && echo "$GREETING" > /etc/greeting && ln /etc/greeting /etc/greeting.link \
    && mknod /lib/fledge-null c 1 3 && cp /bin/busybox /bin/suidbox && chmod 4755 /bin/suidbox
COPY --chown=1234:5678 owned.txt /owned.txt
`

func needRootAndRunc(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("BuildKit tests need root (runc runs the build steps)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("BuildKit tests need runc: apt-get install runc")
	}
}

// writeContext makes a build context holding the Dockerfile, a static
// BusyBox and owned.txt.
func writeContext(t *testing.T, dockerfile string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("a static BusyBox is needed at /bin/busybox: apt-get install busybox-static (%v)", err)
	}
	dir := t.TempDir()
	files := map[string]string{"Dockerfile": dockerfile, "busybox": string(bb), "owned.txt": "owned\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testOptions gives each test its own BuildKit state and cache.
func testOptions(t *testing.T, out io.Writer) Options {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	return Options{StateDir: t.TempDir(), CacheDir: t.TempDir(), Progress: "plain", Out: out}
}

func entriesByPath(t *testing.T, l overlay.Layer) map[string]overlay.Entry {
	t.Helper()
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]overlay.Entry{}
	for _, e := range ents {
		m[e.Path] = e
	}
	return m
}

func TestBuildEmbeddedOfflineDockerfile(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, offlineDockerfile)
	var out bytes.Buffer
	o := testOptions(t, &out)
	spec := Spec{Dockerfile: filepath.Join(dir, "Dockerfile"), Target: "final", BuildArgs: map[string]string{"GREETING": "hello from RUN"}}
	l, err := Build(context.Background(), spec, o)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "[final") {
		t.Errorf("progress output does not show the steps:\n%s", out.String())
	}
	m := entriesByPath(t, l)
	if _, ok := m["/other-stage"]; ok {
		t.Error("/other-stage from the unselected stage is in the rootfs")
	}
	if got := read(t, m["/etc/greeting"]); got != "hello from RUN\n" {
		t.Errorf("/etc/greeting = %q, want the build arg", got)
	}
	if e := m["/owned.txt"]; e.UID != 1234 || e.GID != 5678 {
		t.Errorf("/owned.txt owner %d:%d, want 1234:5678", e.UID, e.GID)
	}
	if a, b := m["/etc/greeting"], m["/etc/greeting.link"]; a.LinkID == "" || a.LinkID != b.LinkID {
		t.Errorf("hard link lost: LinkIDs %q and %q", a.LinkID, b.LinkID)
	}
	if e := m["/bin/suidbox"]; e.Perm != 0o755|fs.ModeSetuid {
		t.Errorf("/bin/suidbox perm %v, want setuid 0755", e.Perm)
	}
	if e := m["/lib/fledge-null"]; e.Type != overlay.CharDev || e.Major != 1 || e.Minor != 3 {
		t.Errorf("/lib/fledge-null: %v %d,%d, want chardev 1,3", e.Type, e.Major, e.Minor)
	}
	if e := m["/bin/sh"]; e.Type != overlay.Symlink || e.Linkname != "/bin/busybox" {
		t.Errorf("/bin/sh: %v -> %q", e.Type, e.Linkname)
	}
	for p, e := range m {
		if e.MTime.Unix() != 1700000000 {
			t.Errorf("%s: mtime %v, want SOURCE_DATE_EPOCH", p, e.MTime)
		}
	}

	// Unchanged inputs are served from the cache without BuildKit: a state
	// dir that is a file would make starting BuildKit fail.
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o.StateDir = blocker
	start := time.Now()
	l2, err := Build(context.Background(), spec, o)
	if err != nil {
		t.Fatalf("cached rebuild: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cached rebuild took %v, want well under a second", d)
	}
	if got := read(t, entriesByPath(t, l2)["/etc/greeting"]); got != "hello from RUN\n" {
		t.Errorf("cached /etc/greeting = %q", got)
	}

	// A changed build arg is a different build.
	spec.BuildArgs["GREETING"] = "changed"
	if _, err := Build(context.Background(), spec, o); err == nil || !strings.Contains(err.Error(), "buildkit state") {
		t.Fatalf("a changed build arg was served from the cache (err %v)", err)
	}
}

func TestBuildFailingRunShowsStepAndOutput(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo boom-output-42; exit 3\"]\n")
	var out bytes.Buffer
	o := testOptions(t, &out)
	_, err := Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err == nil {
		t.Fatal("a failing RUN built")
	}
	if !strings.Contains(err.Error(), "Dockerfile:3") || !strings.Contains(err.Error(), "exit code: 3") {
		t.Errorf("error does not name the Dockerfile line and exit code: %v", err)
	}
	if !strings.Contains(out.String(), "boom-output-42") {
		t.Errorf("the command's output is not shown:\n%s", out.String())
	}
	left, _ := filepath.Glob(filepath.Join(o.CacheDir, "rootfs", "*"))
	if len(left) != 0 {
		t.Errorf("a failed build left %v in the cache", left)
	}
}

// cancelOnOutput cancels a build once the progress shows a marker.
type cancelOnOutput struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel func()
}

func (c *cancelOnOutput) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

func TestBuildCancelLeavesNothingBehind(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo sleeping-now; /bin/busybox sleep 120\"]\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnOutput{marker: "sleeping-now", cancel: cancel}
	o := testOptions(t, w)
	start := time.Now()
	_, err := Build(ctx, Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err == nil || !strings.Contains(err.Error(), "cancel") {
		t.Fatalf("cancelled build: err %v\n%s", err, w.buf.String())
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("cancel took %v", d)
	}
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), o.StateDir) {
		t.Errorf("mounts under %s left behind:\n%s", o.StateDir, mounts)
	}
	if kids := childProcesses(t); len(kids) != 0 {
		t.Errorf("processes left behind: %v", kids)
	}
	if procs := processesRunning("sleeping-now"); len(procs) != 0 {
		t.Errorf("the cancelled build step is still running: pids %v", procs)
	}
	unlock, err := lockState(o.StateDir)
	if err != nil {
		t.Fatalf("state lock still held: %v", err)
	}
	unlock()
}

// processesRunning lists the pids whose command line contains s.
func processesRunning(s string) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// childProcesses lists processes whose parent is this test process.
func childProcesses(t *testing.T) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	self := os.Getpid()
	var kids []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(self) {
			kids = append(kids, s[:i+1])
		}
	}
	return kids
}

func TestBuildLockedStateNamesHolder(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY owned.txt /\n")
	o := testOptions(t, io.Discard)
	unlock, err := lockState(o.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err == nil || !strings.Contains(err.Error(), "in use by fledge process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %v, want one naming this process as the holder", err)
	}
}

func TestBuildWithoutRuncNamesThePackage(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY owned.txt /\n")
	o := testOptions(t, io.Discard)
	t.Setenv("PATH", t.TempDir())
	_, err := Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err == nil || !strings.Contains(err.Error(), "install the runc package") {
		t.Fatalf("error %v, want one naming the runc package", err)
	}
}

// The check for root runs in a copy of this test binary started as nobody.
func TestEmbeddedRefusesNonRoot(t *testing.T) {
	if os.Getenv("FLEDGE_ROOTFS_TEST_AS_NOBODY") == "1" {
		_, err := startEmbedded(context.Background(), os.Getenv("FLEDGE_STATE_DIR"))
		fmt.Printf("startEmbedded: %v\n", err)
		return
	}
	needRootAndRunc(t)
	// t.TempDir's parent is private to root; this one sits in /tmp itself.
	dir, err := os.MkdirTemp("", "fledge-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rootfs.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestEmbeddedRefusesNonRoot$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FLEDGE_ROOTFS_TEST_AS_NOBODY=1", "FLEDGE_STATE_DIR="+filepath.Join(dir, "state"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test binary as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "embedded BuildKit needs root") || !strings.Contains(string(out), "--buildkit-addr") {
		t.Fatalf("as nobody, want the needs-root error naming --buildkit-addr; got:\n%s", out)
	}
}

func TestBuildUnreachableAddressSaysSo(t *testing.T) {
	dir := writeContext(t, "FROM scratch\nCOPY owned.txt /\n")
	o := testOptions(t, io.Discard)
	o.Addr = "unix://" + filepath.Join(t.TempDir(), "no-daemon.sock")
	_, err := Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err == nil || !strings.Contains(err.Error(), "is not reachable") || !strings.Contains(err.Error(), o.Addr) {
		t.Fatalf("error %v, want one saying %s is not reachable", err, o.Addr)
	}
}

// Offline resolves images from what BuildKit holds; a FROM scratch build
// needs nothing, so it must still build.
func TestBuildOffline(t *testing.T) {
	needRootAndRunc(t)
	dir := writeContext(t, "FROM scratch\nCOPY owned.txt /owned.txt\n")
	o := testOptions(t, io.Discard)
	o.Offline = true
	l, err := Build(context.Background(), Spec{Dockerfile: filepath.Join(dir, "Dockerfile")}, o)
	if err != nil {
		t.Fatalf("offline FROM scratch build: %v", err)
	}
	if got := read(t, entriesByPath(t, l)["/owned.txt"]); got != "owned\n" {
		t.Errorf("/owned.txt = %q", got)
	}
}
