package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

// Mapped dynamic programs bring their libraries (issue 11's acceptance):
// Debian's own ls and curl, mapped into the default example, run in the
// guest from the host's libraries alone.

// libsAgent runs the mapped programs and reports how they exited. curl
// reads a file URL, so libcurl really does its work; its closure is deep:
// curl -> libcurl -> libssl -> libcrypto, libcurl -> libgssapi_krb5 ->
// libkrb5 -> libk5crypto.
const libsAgent = `#!/bin/sh
/usr/bin/myapp -1 /
echo "libs-agent: myapp exit $?"
/usr/bin/curl -s file:///proc/cmdline
echo "libs-agent: curl exit $?"
/usr/bin/hello-musl
echo "libs-agent: done"
poweroff -f
`

// libsProject is the default example with ls mapped as /usr/bin/myapp, curl
// as /usr/bin/curl, a program built with musl-gcc (musl's loader) as
// /usr/bin/hello-musl and libsAgent as the agent; extra goes into [source].
func libsProject(t *testing.T, extra string) string {
	t.Helper()
	dir := copyExample(t, "default")
	src := filepath.Join(t.TempDir(), "hello.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { puts(\"hello from musl\"); return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(needTool(t, "musl-gcc", "musl-tools"), "-o", filepath.Join(dir, "hello-musl"), src).CombinedOutput(); err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	for name, host := range map[string]string{"myapp": "/usr/bin/ls", "curl": needTool(t, "curl", "curl")} {
		b, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kestrel"), []byte(libsAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	recipe := localRecipe(extra, `"./myapp" = "/usr/bin/myapp"`+"\n"+`"./curl" = "/usr/bin/curl"`+"\n"+`"./hello-musl" = "/usr/bin/hello-musl"`)
	if err := os.WriteFile(filepath.Join(dir, "fledge.toml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	// The example's manifest names its /usr/bin/hello, which this project
	// does not map; check follows the entrypoint.
	replaceIn(t, filepath.Join(dir, "manifest.toml"), `"/usr/bin/hello"`, `"/usr/bin/myapp"`)
	return dir
}

// localRecipe is a default-mode recipe that builds offline (./kestrel as
// the agent, Debian's BusyBox), with more [source] keys and mappings.
func localRecipe(source, mappings string) string {
	return `version = "1"
strategy = "initramfs"

[agent]
source_strategy = "local"
path = "./kestrel"

[source]
busybox_url = "file:///usr/bin/busybox"
` + source + `

[mappings]
` + mappings + "\n"
}

// listRows is fledge ls --json of a recipe or an artifact.
func listRows(t *testing.T, dir, target string) []inspect.Row {
	t.Helper()
	var rows []inspect.Row
	if err := json.Unmarshal([]byte(mustFledge(t, dir, nil, "ls", target, "/", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestBootMappedDynamicPrograms(t *testing.T) {
	t.Parallel()
	dir := libsProject(t, "")
	out := filepath.Join(t.TempDir(), "libs")
	mustFledge(t, dir, nil, "build", "-c", filepath.Join(dir, "fledge.toml"), "-o", out)
	res := bootImage(t, out+".cpio.gz", `^libs-agent: done$`)
	for _, line := range []string{"proc", "sys", "libs-agent: myapp exit 0", "libs-agent: curl exit 0", "hello from musl"} {
		if !hasLine(res.Output, line) {
			t.Errorf("console lacks %q", line)
		}
	}
	if !strings.Contains(string(res.Output), "console=ttyS0") {
		t.Error("curl did not print /proc/cmdline")
	}

	// why names the host file and the programs that needed libc.
	libc := ""
	for _, r := range listRows(t, dir, "fledge.toml") {
		if filepath.Base(r.Path) == "libc.so.6" && r.Type == "file" {
			libc = r.Path
		}
	}
	if libc == "" {
		t.Fatal("the image has no libc.so.6")
	}
	var x inspect.Explanation
	if err := json.Unmarshal([]byte(mustFledge(t, dir, nil, "why", libc, "--json").stdout), &x); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(libc)
	if err != nil {
		t.Fatal(err)
	}
	if p := x.Provider; p == nil || p.Layer != "libraries" || p.Source != real || !slices.Contains(p.NeededBy, "/usr/bin/myapp") || !slices.Contains(p.NeededBy, "/usr/bin/curl") {
		t.Errorf("why %s: %+v; want layer libraries from %s, needed by /usr/bin/myapp and /usr/bin/curl", libc, x.Provider, real)
	}
	human := mustFledge(t, dir, nil, "why", libc).stdout
	if !strings.Contains(human, "needed by /usr/bin/curl, /usr/bin/myapp") {
		t.Errorf("why %s does not name the programs:\n%s", libc, human)
	}
	if r := mustFledge(t, dir, nil, "check"); !strings.Contains(r.stdout, "0 errors") {
		t.Errorf("check of the image with its libraries:\n%s", r.stdout)
	}
	// The interpreter path written in the programs resolves in the image.
	names := archiveNames(t, out+".cpio.gz")
	for _, n := range []string{"lib64/ld-linux-x86-64.so.2", "lib/ld-musl-x86_64.so.1", "usr/bin/myapp"} {
		if !names[n] {
			t.Errorf("%s is not in the artifact", n)
		}
	}
}

// Through a live mount, a mapped program rebuilt against other libraries
// brings them: the libraries layer follows the mappings.
func TestMountFollowsARebuiltProgram(t *testing.T) {
	dir := libsProject(t, "")
	mnt := newMountpoint(t)
	startMount(t, dir, mnt, "-c", filepath.Join(dir, "fledge.toml"))
	curl := filepath.Join(mnt, "lib/x86_64-linux-gnu/libcurl.so.4")
	if _, err := os.Lstat(curl); err != nil {
		t.Fatalf("the mounted image lacks curl's libcurl: %v", err)
	}
	// "Rebuild" /usr/bin/curl as a program that needs only libc: write
	// it beside and rename it into place, as build tools do.
	b, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".curl.new")
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "curl")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Lstat(curl)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after curl was rebuilt without libcurl, the mount still shows %s (%v)", curl, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "lib/x86_64-linux-gnu/libc.so.6")); err != nil {
		t.Errorf("libc left the mounted image with libcurl: %v", err)
	}
}

// With the opt-out the libraries stay out, and check says so, naming the
// program.
func TestHostLibrariesOptOut(t *testing.T) {
	t.Parallel()
	dir := libsProject(t, "host_libraries = false\n")
	for _, r := range listRows(t, dir, "fledge.toml") {
		if r.Layer == "libraries" {
			t.Errorf("%s comes from the libraries layer despite host_libraries = false", r.Path)
		}
	}
	r := fledge(t, dir, nil, "check")
	if r.code != 2 || !strings.Contains(r.stdout, "error lib-missing: /usr/bin/myapp: /usr/bin/myapp needs libc.so.6") {
		t.Errorf("check with host_libraries = false: exit %d, want 2 and lib-missing for /usr/bin/myapp:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A Dockerfile rootfs that brings its own libc and loader is used as it is:
// nothing comes from the host.
func TestRootfsLibcWinsOverTheHost(t *testing.T) {
	needRoot(t)
	needTool(t, "runc", "runc")
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-o", filepath.Join(dir, "hello"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	// The rootfs's libc and loader are the host's files, copied in: the
	// same names, so only provenance tells where the image takes them.
	libs := filepath.Join(dir, "libs")
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(libs, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(libs, "lib64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(libs, "lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Dockerfile":  "FROM scratch\nCOPY libs/ /\n",
		"kestrel":     "#!/bin/sh\n/usr/bin/hello\npoweroff -f\n",
		"fledge.toml": localRecipe(`dockerfile = "./Dockerfile"`, `"./hello" = "/usr/bin/hello"`),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := buildkitEnv(t, t.TempDir())
	r := mustFledge(t, dir, env, "ls", "fledge.toml", "/", "--json", "--progress", "plain")
	var rows []inspect.Row
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	layers := map[string]string{}
	for _, row := range rows {
		layers[row.Path] = row.Layer
		if row.Layer == "libraries" {
			t.Errorf("%s taken from the host (%s) although the rootfs brings its libc", row.Path, row.Source)
		}
	}
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"} {
		if layers[p] != "rootfs" {
			t.Errorf("%s: layer %q, want rootfs", p, layers[p])
		}
	}
	if r := fledge(t, dir, env, "check"); r.code != 0 {
		t.Errorf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A program the edits add brings its libraries as a mapped one does: the
// recipe's libraries layer follows the edits handed to it beside the stack.
func TestEditedProgramBringsItsLibraries(t *testing.T) {
	t.Parallel()
	dir := copyExample(t, "default")
	files := map[string]string{
		"fledge.toml": localRecipe("", ""),
		"kestrel":     "#!/bin/sh\npoweroff -f\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := os.ReadFile("/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	edit := filepath.Join(dir, ".fledge", "edits", "usr", "bin", "myls")
	if err := os.MkdirAll(filepath.Dir(edit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(edit, ls, 0o755); err != nil {
		t.Fatal(err)
	}
	var x inspect.Explanation
	if err := json.Unmarshal([]byte(mustFledge(t, dir, nil, "why", "/lib/x86_64-linux-gnu/libc.so.6", "--json").stdout), &x); err != nil {
		t.Fatal(err)
	}
	if p := x.Provider; p == nil || p.Layer != "libraries" || !slices.Contains(p.NeededBy, "/usr/bin/myls") {
		t.Errorf("why libc.so.6: %+v; want the libraries layer, needed by the edited /usr/bin/myls", x.Provider)
	}
}
