package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dockerfile rootfs end to end (issue 4's acceptance): the real binary,
// real BuildKit with runc, GNU cpio to read the artifact, QEMU to boot it.
// Everything is offline: FROM scratch, Debian's static BusyBox, a local
// stand-in agent.

const issueDockerfile = `FROM scratch AS other
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo other > /other-stage"]

FROM scratch AS final
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG GREETING=unset
RUN mkdir -p /etc && echo "$GREETING" > /etc/greeting
COPY --chown=1234:5678 owned.txt /owned.txt
`

// The agent prints what the RUN step wrote, then powers the guest off.
const greetingAgent = `#!/bin/sh
echo "rootfs-agent: greeting=$(cat /etc/greeting)"
poweroff -f
`

// dockerfileProject lays out parent/myplugin/{Dockerfile,busybox,owned.txt,
// kestrel} and returns parent; builds run in parent so the artifact lands
// outside the build context.
func dockerfileProject(t *testing.T, dockerfile string) string {
	t.Helper()
	bb, err := os.ReadFile(needTool(t, "busybox", "busybox-static"))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "myplugin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"Dockerfile": dockerfile, "busybox": string(bb), "owned.txt": "owned\n", "kestrel": greetingAgent}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return parent
}

func directBuildArgs(extra ...string) []string {
	return append([]string{"build", "myplugin/Dockerfile", "--output-initramfs", "--target", "final",
		"--build-arg", "GREETING=hello-from-build-arg", "--agent", "myplugin/kestrel",
		"--busybox-url", "file:///usr/bin/busybox", "--progress", "plain"}, extra...)
}

// buildkitEnv gives a run its own BuildKit state and fledge cache.
func buildkitEnv(t *testing.T, state string) []string {
	return []string{"FLEDGE_STATE_DIR=" + state, "XDG_CACHE_HOME=" + t.TempDir(), "SOURCE_DATE_EPOCH=1700000000", "BUILDKIT_HOST="}
}

func TestDockerfileDirectBuildBootsAndRepeats(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, issueDockerfile)
	env := buildkitEnv(t, t.TempDir())
	mustFledge(t, parent, env, directBuildArgs()...)
	artifact := filepath.Join(parent, "myplugin.cpio.gz")
	if _, err := os.Stat(filepath.Join(parent, "myplugin.manifest.json")); err != nil {
		t.Fatalf("no manifest beside the artifact: %v", err)
	}
	first := sha256File(t, artifact)

	listing := gnuCPIO(t, artifact, "", "-itvn", "--quiet")
	if !regexp.MustCompile(`(?m)^\S+\s+\d+\s+1234\s+5678\s.*\bowned\.txt$`).MatchString(listing) {
		t.Errorf("cpio -itvn does not show owned.txt as 1234/5678:\n%s", listing)
	}
	names := archiveNames(t, artifact)
	if names["other-stage"] {
		t.Error("other-stage, made by the stage --target did not select, is in the image")
	}
	for _, n := range []string{"etc/greeting", "bin/kestrel", "init"} {
		if !names[n] {
			t.Errorf("%s missing from the image", n)
		}
	}
	res := bootImage(t, artifact, `^rootfs-agent: greeting=hello-from-build-arg$`)
	t.Logf("booted in %v", res.Elapsed)

	// Nothing changed: the same bytes, from the cache, without BuildKit
	// (a state dir that is a file would make starting BuildKit fail).
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cached := append(append([]string{}, env...), "FLEDGE_STATE_DIR="+blocker)
	start := time.Now()
	r := mustFledge(t, parent, cached, directBuildArgs()...)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cached rebuild took %v", d)
	}
	if strings.Contains(r.stderr, "load build definition") {
		t.Errorf("cached rebuild ran BuildKit:\n%s", r.stderr)
	}
	if got := sha256File(t, artifact); got != first {
		t.Errorf("rebuild with nothing changed: sha256 %s, first build %s", got, first)
	}

	// An external buildkitd built from the pinned module gives the same bytes.
	addr := startBuildkitd(t)
	ext := filepath.Join(t.TempDir(), "ext")
	extEnv := append(buildkitEnv(t, blocker), "BUILDKIT_HOST="+addr)
	mustFledge(t, parent, extEnv, directBuildArgs("-o", ext)...)
	if got := sha256File(t, ext+".cpio.gz"); got != first {
		t.Errorf("external buildkitd artifact sha256 %s, embedded %s", got, first)
	}
}

func TestDockerfileFailingRunLeavesNoArtifact(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, "FROM scratch AS final\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing-step-output; exit 7\"]\n")
	r := fledge(t, parent, buildkitEnv(t, t.TempDir()), directBuildArgs()...)
	if r.code == 0 {
		t.Fatal("a failing RUN exited 0")
	}
	for _, want := range []string{"Dockerfile:3", "failing-step-output", "exit code: 7"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	left, _ := filepath.Glob(filepath.Join(parent, "myplugin*"))
	if len(left) != 1 {
		t.Errorf("a failed build left %v", left)
	}
}

func TestDockerfileDirectFormNeedsOutputInitramfs(t *testing.T) {
	parent := dockerfileProject(t, issueDockerfile)
	r := fledge(t, parent, nil, "build", "myplugin/Dockerfile")
	if want := "fledge: build myplugin/Dockerfile: only initramfs output is supported; add --output-initramfs"; r.code == 0 || !strings.HasPrefix(r.stderr, want) {
		t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}
}

// The external-daemon test builds buildkitd from .ci/buildkitd, a module of
// its own (buildkitd's stargz snapshotter does not build against the
// go-fuse fledge uses); it must pin the BuildKit fledge embeds.
func TestBuildkitdToolPinsTheEmbeddedVersion(t *testing.T) {
	root := repoRoot(t)
	want := requiredVersion(t, filepath.Join(root, "go.mod"), "github.com/moby/buildkit")
	got := requiredVersion(t, filepath.Join(root, ".ci", "buildkitd", "go.mod"), "github.com/moby/buildkit")
	if got != want {
		t.Fatalf(".ci/buildkitd pins buildkit %s, go.mod %s; run go get github.com/moby/buildkit@%s in .ci/buildkitd", got, want, want)
	}
}

func requiredVersion(t *testing.T, gomod, module string) string {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s does not require %s", gomod, module)
	}
	return string(m[1])
}

// startBuildkitd runs `go tool buildkitd` (rootful, runc worker) on a unix
// socket in a temp dir, and stops it when the test ends.
func startBuildkitd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "buildkitd.sock")
	cmd := exec.Command("go", "-C", filepath.Join(repoRoot(t), ".ci", "buildkitd"), "tool", "buildkitd",
		"--root", filepath.Join(dir, "root"), "--addr", "unix://"+sock, "--oci-worker=true", "--containerd-worker=false")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// Its own process group, so stopping it reaches buildkitd and not only
	// the go command that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go tool buildkitd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock
		}
		select {
		case <-exited:
			t.Fatalf("buildkitd exited before listening: %v\n%s", waitErr, logs.String())
		case <-ctx.Done():
			t.Fatalf("buildkitd did not listen on %s within 10 minutes (building it cold takes 2-4)\n%s", sock, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test runs BuildKit, which needs root; run it as root (.ci/test does)")
	}
}

// Ctrl-C during a RUN step: fledge exits non-zero, and leaves no mounts, no
// build processes, no artifact and no lock (the next build on the same
// state runs).
func TestDockerfileInterruptLeavesNothingBehind(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, "FROM scratch AS final\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo interrupt-me-now; /bin/busybox sleep 300\"]\n")
	state := t.TempDir()
	env := buildkitEnv(t, state)
	cmd := exec.Command(fledgeBin, directBuildArgs()...)
	cmd.Dir = parent
	cmd.Env = append(os.Environ(), env...)
	seen := make(chan struct{})
	var stderr bytes.Buffer
	cmd.Stderr = &watchWriter{buf: &stderr, marker: "interrupt-me-now", seen: seen}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the RUN step never started:\n%s", stderr.String())
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("an interrupted build exited 0:\n%s", stderr.String())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("fledge took %v to stop after Ctrl-C", d)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	if bytes.Contains(mounts, []byte(state)) {
		t.Errorf("mounts under %s left behind:\n%s", state, mounts)
	}
	if pids := pidsRunning("interrupt-me-now"); len(pids) != 0 {
		t.Errorf("the interrupted step is still running: pids %v", pids)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, "myplugin.*")); len(left) != 0 {
		t.Errorf("an interrupted build left %v", left)
	}
	os.WriteFile(filepath.Join(parent, "myplugin", "Dockerfile"), []byte("FROM scratch AS final\nCOPY owned.txt /owned.txt\n"), 0o644)
	mustFledge(t, parent, env, directBuildArgs()...)
}

// watchWriter closes seen once marker has been written.
type watchWriter struct {
	buf    *bytes.Buffer
	marker string
	seen   chan struct{}
	closed bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.closed && strings.Contains(w.buf.String(), w.marker) {
		w.closed = true
		close(w.seen)
	}
	return len(p), nil
}

// pidsRunning lists processes whose command line contains s.
func pidsRunning(s string) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, p := range cmdlines {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// TestDockerfileDirectFormSpeaksOfItsFlags: the direct form has no recipe,
// so its messages name its flags and arguments, a rootfs /init is kept
// unless --init says otherwise, and BusyBox can be left out.
func TestDockerfileDirectFormSpeaksOfItsFlags(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, "FROM scratch\nCOPY busybox /bin/busybox\nCOPY kestrel /init\n")
	// An unrelated recipe in the context folder, line 6 a comment.
	if err := os.WriteFile(filepath.Join(parent, "myplugin", "fledge.toml"), []byte("version = \"1\"\nstrategy = \"initramfs\"\n\n\n\n# comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noRecipe := func(what string, r result) {
		t.Helper()
		if strings.Contains(r.stderr, "fledge.toml") || strings.Contains(r.stderr, "source.") {
			t.Errorf("%s: the message speaks of a recipe:\n%s", what, r.stderr)
		}
	}
	r := fledge(t, parent, nil, "build", "myplugin/Nope", "--output-initramfs")
	if r.code != 1 || !strings.Contains(r.stderr, "DOCKERFILE myplugin/Nope does not exist") {
		t.Errorf("missing Dockerfile: exit %d, stderr %q", r.code, r.stderr)
	}
	noRecipe("missing Dockerfile", r)

	env := buildkitEnv(t, t.TempDir())
	args := func(extra ...string) []string {
		return append([]string{"build", "myplugin/Dockerfile", "--output-initramfs", "--progress", "plain"}, extra...)
	}
	r = fledge(t, parent, env, args("--busybox-url", "file:///nonexistent/busybox")...)
	if r.code != 1 || !strings.Contains(r.stderr, "--busybox=false") || !strings.Contains(r.stderr, "point --busybox-url at") {
		t.Errorf("missing BusyBox: exit %d, stderr %q; want the flags to change", r.code, r.stderr)
	}
	noRecipe("missing BusyBox", r)

	theirs, err := os.ReadFile(filepath.Join(parent, "myplugin", "kestrel"))
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(parent, "kept")
	r = mustFledge(t, parent, env, args("--busybox-url", "file:///usr/bin/busybox", "-o", kept)...)
	if got := gnuCPIO(t, kept+".cpio.gz", "", "-i", "--to-stdout", "--quiet", "init"); got != string(theirs) {
		t.Errorf("without --init, /init is not the Dockerfile's:\n%q", got)
	}
	if names := archiveNames(t, kept+".cpio.gz"); names["bin/kestrel"] {
		t.Error("the Dockerfile's /init was kept, yet the agent was added")
	}
	if !strings.Contains(r.stderr, "kept as PID 1") || !strings.Contains(r.stderr, "--init=default") {
		t.Errorf("keeping the Dockerfile's /init says nothing about it:\n%s", r.stderr)
	}

	r = fledge(t, parent, env, args("--busybox-url", "file:///usr/bin/busybox", "--agent", "myplugin/kestrel", "-o", filepath.Join(parent, "refused"))...)
	if r.code != 1 || !strings.Contains(r.stderr, "the Dockerfile's rootfs has /init, and --agent asks for the Kestrel agent") {
		t.Errorf("--agent over a rootfs /init: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}

	replaced := filepath.Join(parent, "replaced")
	mustFledge(t, parent, env, args("--busybox-url", "file:///usr/bin/busybox", "--agent", "myplugin/kestrel", "--init", "default", "-o", replaced)...)
	if got := gnuCPIO(t, replaced+".cpio.gz", "", "-i", "--to-stdout", "--quiet", "init"); !strings.HasPrefix(got, "\x7fELF") {
		t.Errorf("--init default: /init is not fledge's init: %q…", got[:min(len(got), 40)])
	}
	if names := archiveNames(t, replaced+".cpio.gz"); !names["bin/kestrel"] {
		t.Error("--init default --agent: no /bin/kestrel")
	}

	bare := filepath.Join(parent, "bare")
	mustFledge(t, parent, env, args("--busybox=false", "-o", bare)...)
	if names := archiveNames(t, bare+".cpio.gz"); names["bin/sh"] {
		t.Error("--busybox=false: BusyBox's /bin/sh link is in the image")
	}
}

// TestDockerfileDirectFormWritesOutsideTheContext: run from inside the
// context, the default output goes above it, so the context is unchanged
// and the rebuild comes from the rootfs cache.
func TestDockerfileDirectFormWritesOutsideTheContext(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, "FROM scratch\nCOPY busybox /bin/busybox\n")
	ctxDir := filepath.Join(parent, "myplugin")
	env := buildkitEnv(t, t.TempDir())
	args := []string{"build", "Dockerfile", "--output-initramfs", "--agent", "kestrel", "--busybox-url", "file:///usr/bin/busybox", "--progress", "plain"}
	mustFledge(t, ctxDir, env, args...)
	if left, _ := filepath.Glob(filepath.Join(ctxDir, "myplugin.*")); len(left) > 0 {
		t.Errorf("the default output went into the build context: %v", left)
	}
	for _, p := range []string{"myplugin.cpio.gz", "myplugin.manifest.json"} {
		if _, err := os.Stat(filepath.Join(parent, p)); err != nil {
			t.Errorf("no %s above the context: %v", p, err)
		}
	}
	if r := mustFledge(t, ctxDir, env, args...); strings.Contains(r.stderr, "load build definition") {
		t.Errorf("the rebuild with nothing changed ran BuildKit:\n%s", r.stderr)
	}
}
