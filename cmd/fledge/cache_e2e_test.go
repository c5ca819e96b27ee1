package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
)

// Issue 20's shared build cache: machines, each with its own BuildKit
// state and fledge cache, embedded BuildKit or a daemon, share BuildKit's
// cache through a loopback registry (Debian's docker-registry) or a folder.

// slowDockerfile has a step worth not running twice; it prints stepMarker
// when it runs.
const slowDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 3 && /bin/busybox echo slow-step-ran && /bin/busybox echo x > /y"]
`

const stepMarker = "slow-step-ran"

// startRegistry runs docker-registry on a free loopback port with its
// storage in a temp folder, and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin := needTool(t, "docker-registry", "docker-registry")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "storage"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("docker-registry exited before serving: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s within 30 s\n%s", addr, logs.String())
		}
	}
}

// runStep reads BuildKit's status stream (--progress rawjson) for the RUN
// step: whether BuildKit reported it loaded from a cache, and what it
// printed. The plain display is no witness: a step whose cached result is
// still being downloaded may end as DONE rather than CACHED.
func runStep(t *testing.T, log string) (cached bool, output string) {
	t.Helper()
	run := map[digest.Digest]bool{}
	var out strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // fledge's own lines
		}
		var st client.SolveStatus
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatalf("build log line %q: %v", line, err)
		}
		for _, v := range st.Vertexes {
			if strings.Contains(v.Name, "] RUN ") {
				run[v.Digest] = true
				cached = cached || (v.Cached && v.Completed != nil)
			}
		}
		for _, l := range st.Logs {
			if run[l.Vertex] {
				out.Write(l.Data)
			}
		}
	}
	if len(run) == 0 {
		t.Fatalf("no RUN step in the build log:\n%s", log)
	}
	return cached, out.String()
}

// ranStep fails the test unless the log shows the RUN step run (want) or
// taken from a cache (!want).
func ranStep(t *testing.T, what string, log string, want bool) {
	t.Helper()
	cached, out := runStep(t, log)
	ran := strings.Contains(out, stepMarker)
	switch {
	case want && (!ran || cached):
		t.Errorf("%s: the RUN step was not run (cached %v, output %q); expected it to run", what, cached, out)
	case !want && (ran || !cached):
		t.Errorf("%s: the RUN step was run (cached %v, output %q); expected it CACHED", what, cached, out)
	}
}

func TestBuildCacheSharedThroughRegistry(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	reg := startRegistry(t)
	parent := dockerfileProject(t, slowDockerfile)
	ref := "type=registry,ref=" + reg + "/fledge/cache,registry.insecure=true"
	args := func(extra ...string) []string {
		return append([]string{"build", "myplugin/Dockerfile", "--output-initramfs", "--agent", "myplugin/kestrel",
			"--busybox-url", "file:///usr/bin/busybox", "--progress", "rawjson"}, extra...)
	}

	first := mustFledge(t, parent, buildkitEnv(t, t.TempDir()), args("-o", "first", "--cache-to", ref)...)
	ranStep(t, "the first build", first.stderr, true)
	// A second machine: its own BuildKit state and fledge cache, so only
	// the registry can spare it the step.
	second := mustFledge(t, parent, buildkitEnv(t, t.TempDir()), args("-o", "second", "--cache-from", ref)...)
	ranStep(t, "the second build, with --cache-from", second.stderr, false)
	a, b := sha256File(t, filepath.Join(parent, "first.cpio.gz")), sha256File(t, filepath.Join(parent, "second.cpio.gz"))
	if a != b {
		t.Errorf("the build with the shared cache gave sha256 %s; the first build %s", b, a)
	}

	// A third machine builds with a BuildKit daemon of its own.
	ext := append(buildkitEnv(t, t.TempDir()), "BUILDKIT_HOST="+startBuildkitd(t))
	third := mustFledge(t, parent, ext, args("-o", "third", "--cache-from", ref)...)
	ranStep(t, "the build on an external buildkitd", third.stderr, false)
	if c := sha256File(t, filepath.Join(parent, "third.cpio.gz")); c != a {
		t.Errorf("the build on an external buildkitd gave sha256 %s; the first build %s", c, a)
	}
}

// Recipe keys do the same through a folder (type=local, relative to the
// recipe), and a cache export happens even when fledge's own cache holds
// the rootfs.
func TestBuildCacheSharedThroughFolderByRecipe(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	parent := dockerfileProject(t, slowDockerfile)
	recipe := func(key string) string {
		return fmt.Sprintf("version = \"1\"\nstrategy = \"initramfs\"\n[agent]\nsource_strategy = \"local\"\npath = \"myplugin/kestrel\"\n"+
			"[source]\ndockerfile = \"myplugin/Dockerfile\"\nbusybox_url = \"/usr/bin/busybox\"\n%s\n", key)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(parent, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("to.toml", recipe(`cache_to = ["type=local,dest=buildcache"]`))
	write("from.toml", recipe(`cache_from = ["type=local,src=buildcache"]`))
	cache := filepath.Join(parent, "buildcache")

	// fledge's cache already has the rootfs: BuildKit must still run to
	// export it.
	env := buildkitEnv(t, t.TempDir())
	mustFledge(t, parent, env, "build", "-c", "from.toml", "-o", "warm", "--progress", "rawjson")
	r := mustFledge(t, parent, env, "build", "-c", "to.toml", "-o", "first", "--progress", "rawjson")
	if !strings.Contains(r.stderr, "exporting cache") {
		t.Errorf("cache_to with the rootfs in fledge's cache exported nothing:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(cache, "index.json")); err != nil {
		t.Fatalf("cache_to = type=local,dest=buildcache wrote no cache beside the recipe: %v", err)
	}
	second := mustFledge(t, parent, buildkitEnv(t, t.TempDir()), "build", "-c", "from.toml", "-o", "second", "--progress", "rawjson")
	ranStep(t, "the build with cache_from", second.stderr, false)
	if a, b := sha256File(t, filepath.Join(parent, "first.cpio.gz")), sha256File(t, filepath.Join(parent, "second.cpio.gz")); a != b {
		t.Errorf("the build with the shared cache gave sha256 %s; the first build %s", b, a)
	}
}

// Cache flags and keys are checked before anything is built.
func TestBuildCacheRefusals(t *testing.T) {
	dir := copyExample(t, "default")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"build", "--cache-from", "type=registry,ref=127.0.0.1:1/c"}, "builds no Dockerfile or image rootfs"},
		{[]string{"pack", "-o", "x.cpio", "--cache-to", "type=local"}, "type=local needs dest=DIR"},
		{[]string{"build", "--cache-to", `type=registry,"ref`}, `--cache-to "type=registry,\"ref"`},
	}
	for _, c := range cases {
		r := fledge(t, dir, nil, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("fledge %v: exit %d, stderr %q; want an error mentioning %q", c.args, r.code, r.stderr, c.want)
		}
	}
}
