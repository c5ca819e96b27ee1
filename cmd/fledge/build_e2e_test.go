package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/overlay"
)

var modes = []string{"default", "custom", "none"}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestBuildIsReproducible builds one recipe copied to two folders, at
// different times, from different working directories, once on one core
// and once on all of them: the artifacts must be the same bytes.
func TestBuildIsReproducible(t *testing.T) {
	a := copyExample(t, "default")
	b := copyExample(t, "default")
	mustFledge(t, "/", []string{"GOMAXPROCS=1"}, "build", "-c", filepath.Join(a, "fledge.toml"))

	time.Sleep(1100 * time.Millisecond)
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(b, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, later, later) })
	mustFledge(t, filepath.Dir(b), nil, "build", "-c", filepath.Join(filepath.Base(b), "fledge.toml"))

	sa, sb := sha256File(t, filepath.Join(a, "plugin.cpio.gz")), sha256File(t, filepath.Join(b, "plugin.cpio.gz"))
	if sa != sb {
		t.Fatalf("artifacts differ: %s vs %s", sa, sb)
	}
	ma, _ := os.ReadFile(filepath.Join(a, "plugin.manifest.json"))
	mb, _ := os.ReadFile(filepath.Join(b, "plugin.manifest.json"))
	if !bytes.Equal(ma, mb) {
		t.Errorf("manifests differ:\n%s\n%s", ma, mb)
	}
}

// TestBuildOutputs checks each example's artifact with GNU cpio and its
// manifest with the schema, and that nothing is written but the outputs.
func TestBuildOutputs(t *testing.T) {
	needTool(t, "cpio", "cpio")
	schema := compileManifestSchema(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			dir := copyExample(t, mode)
			out := filepath.Join(t.TempDir(), "dist", "img")
			os.MkdirAll(filepath.Dir(out), 0o755)
			r := mustFledge(t, dir, nil, "build", "-o", out)
			if !strings.Contains(r.stdout, out+".cpio.gz") {
				t.Errorf("output does not name the artifact:\n%s", r.stdout)
			}
			entries, _ := os.ReadDir(filepath.Dir(out))
			if len(entries) != 2 {
				t.Errorf("dist has %d files, want the artifact and the manifest only", len(entries))
			}
			listing := run(t, "", "sh", "-c", "gzip -dc "+out+".cpio.gz | cpio -itv --quiet")
			first := strings.SplitN(listing, "\n", 2)[0]
			if !strings.HasPrefix(first, "drwxr-xr-x") || !strings.HasSuffix(first, " .") {
				t.Errorf("first entry %q, want the root directory . with mode 0755", first)
			}
			assertExtractsView(t, dir, out+".cpio.gz")
			validateManifest(t, schema, out+".manifest.json", sha256File(t, out+".cpio.gz"))
		})
	}
}

// assertExtractsView extracts the artifact with GNU cpio and compares the
// tree with the merged view fledge computes for the recipe.
func assertExtractsView(t *testing.T, recipeDir, artifact string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "x")
	os.Mkdir(root, 0o755)
	run(t, root, "sh", "-c", "gzip -dc "+artifact+" | cpio -idm --quiet --no-absolute-filenames")
	f := &stackFlags{config: filepath.Join(recipeDir, "fledge.toml"), cacheDir: filepath.Join(cacheDir, "fledge")}
	cmd := &cobra.Command{}
	cmd.SetErr(&bytes.Buffer{})
	_, st, err := f.load(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.View()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	v.Walk(func(n *overlay.Node) error {
		want[n.Path] = describeNode(t, n)
		return nil
	})
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.Clean("/"+rel)] = describeHost(t, p)
		return nil
	})
	if d := diffMaps(want, got); d != "" {
		t.Errorf("extracted tree differs from the merged view (- view, + extracted):\n%s", d)
	}
}

func describeNode(t *testing.T, n *overlay.Node) string {
	s := fmt.Sprintf("%o %d:%d", n.UnixMode(), n.UID, n.GID)
	switch n.Type {
	case overlay.Regular:
		r, err := n.Content.Open()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, r.Size())
		r.ReadAt(buf, 0)
		r.Close()
		h.Write(buf)
		s += " " + hex.EncodeToString(h.Sum(nil))[:16]
	case overlay.Symlink:
		s += " -> " + n.Linkname
	case overlay.CharDev, overlay.BlockDev:
		s += fmt.Sprintf(" %d,%d", n.Major, n.Minor)
	}
	return s
}

func describeHost(t *testing.T, p string) string {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		s += " " + sha256File(t, p)[:16]
	case syscall.S_IFLNK:
		target, _ := os.Readlink(p)
		s += " -> " + target
	case syscall.S_IFCHR, syscall.S_IFBLK:
		s += fmt.Sprintf(" %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return s
}

func diffMaps(want, got map[string]string) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var b strings.Builder
	for _, k := range sorted {
		if want[k] != got[k] {
			fmt.Fprintf(&b, "- %s %s\n+ %s %s\n", k, want[k], k, got[k])
		}
	}
	return b.String()
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func compileManifestSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	s, err := jsonschema.NewCompiler().Compile(filepath.Join(repoRoot(t), "testdata", "schemas", "plugin-manifest-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateManifest(t *testing.T, s *jsonschema.Schema, p, sum string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("%s does not validate:\n%s\n%v", p, data, err)
	}
	if !bytes.Contains(data, []byte(`"checksum": "sha256:`+sum+`"`)) {
		t.Errorf("manifest does not carry the artifact's checksum %s:\n%s", sum, data)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := copyExample(t, "default")
	text, err := os.ReadFile(filepath.Join(dir, "fledge.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lz4.toml"), append(text, "\n[output]\ncompression = \"lz4\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build", "-c", "nope.toml"}, "recipe nope.toml not found"},
		{[]string{"build", "--compression", "lzo"}, `--compression "lzo": use one of gzip, zstd, xz, lz4, none`},
		{[]string{"build", "-o", "x.cpio.zst", "--compression", "xz"}, "names a zstd archive but --compression is xz"},
		{[]string{"pack", "-o", "x.cpio.gz", "--compression", "none"}, "names a gzip archive but --compression is none"},
		{[]string{"pack"}, "pack needs -o FILE"},
		{[]string{"build", "-m", "missing.toml"}, "manifest missing.toml not found"},
	}
	for _, tt := range tests {
		r := fledge(t, dir, nil, tt.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("fledge %v: exit %d, stderr %q; want failure mentioning %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "plugin.cpio.gz")); err == nil {
		t.Error("a failed build left an artifact")
	}
}

func TestPackWritesOnlyTheArchive(t *testing.T) {
	dir := copyExample(t, "none")
	out := filepath.Join(t.TempDir(), "img.cpio")
	mustFledge(t, dir, nil, "pack", "-o", out, "--compression", "none")
	if _, err := os.Stat(strings.TrimSuffix(out, ".cpio") + ".manifest.json"); err == nil {
		t.Error("pack wrote a manifest without --manifest")
	}
	listing := run(t, "", "cpio", "-it", "--quiet", "-F", out)
	for _, want := range []string{"init\n", "bin/busybox\n", "dev/console\n"} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
}

// TestBuildNeedsNoRoot builds the default example as nobody, with a home
// of its own, and gets the bytes root gets.
func TestBuildNeedsNoRoot(t *testing.T) {
	dir := copyExample(t, "default")
	// t.TempDir's folders are root's and 0700; nobody must read the recipe.
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := nobodyHome(t)
	asNobody := filepath.Join(home, "img")
	cmd := exec.Command(fledgeBin, "build", "-c", filepath.Join(dir, "fledge.toml"), "-o", asNobody)
	runAsNobody(cmd, home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build as nobody: %v\n%s", err, out)
	}
	asRoot := filepath.Join(t.TempDir(), "img")
	mustFledge(t, dir, nil, "build", "-o", asRoot)
	if a, b := sha256File(t, asNobody+".cpio.gz"), sha256File(t, asRoot+".cpio.gz"); a != b {
		t.Errorf("built as nobody: sha256 %s; as root: %s", a, b)
	}
}

// TestOutputFolderIsCreated follows the documented `-o dist/app`: the
// folder need not exist beforehand, for build and for pack.
func TestOutputFolderIsCreated(t *testing.T) {
	dir := copyExample(t, "none")
	out := filepath.Join(t.TempDir(), "dist", "app")
	mustFledge(t, dir, nil, "build", "-o", out)
	for _, p := range []string{out + ".cpio.gz", out + ".manifest.json"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("build -o %s: %v", out, err)
		}
	}
	packed := filepath.Join(t.TempDir(), "a", "b", "img.cpio.zst")
	mustFledge(t, dir, nil, "pack", "-o", packed, "--compression", "zstd")
	if _, err := os.Stat(packed); err != nil {
		t.Errorf("pack -o %s: %v", packed, err)
	}
}

// The flags of the direct form mean nothing to a recipe build; ignoring
// them silently would build something else than asked.
func TestDockerfileFlagsNeedADockerfile(t *testing.T) {
	dir := copyExample(t, "none")
	r := fledge(t, dir, nil, "build", "--target", "final", "--build-arg", "A=1")
	if r.code != 1 || !strings.Contains(r.stderr, "--target") || !strings.Contains(r.stderr, "source.target") {
		t.Fatalf("build --target without a Dockerfile: exit %d, stderr %q; want a refusal naming the recipe key", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "plugin.cpio.gz")); err == nil {
		t.Error("the refused build wrote an artifact")
	}
}

// A BusyBox that cannot be had is the likeliest failure of a first build
// on a machine without network; the message offers the ways out.
func TestBusyBoxFailureSaysWhatToDo(t *testing.T) {
	dir := copyExample(t, "none")
	text := readRecipe(t, dir)
	writeRecipe(t, dir, strings.Replace(text, "file:///usr/bin/busybox", "file:///nonexistent/busybox", 1))
	r := fledge(t, dir, nil, "build")
	for _, want := range []string{"/nonexistent/busybox", "busybox-static: /usr/bin/busybox", "busybox = false"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("build with a missing BusyBox: exit %d, stderr %q; want it to mention %q", r.code, r.stderr, want)
		}
	}
}

// A mistyped flag points at the help that lists the right ones.
func TestFlagErrorsPointAtHelp(t *testing.T) {
	r := fledge(t, t.TempDir(), nil, "build", "--ouput", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "unknown flag: --ouput") || !strings.Contains(r.stderr, "fledge build --help") {
		t.Fatalf("build --ouput: exit %d, stderr %q; want the flag named and 'fledge build --help'", r.code, r.stderr)
	}
}

// TestBuildWarnsWhenTheOutputIsMapped: an artifact written into a mapped
// folder would be packed into the next build.
func TestBuildWarnsWhenTheOutputIsMapped(t *testing.T) {
	dir := copyExample(t, "none")
	appendRecipe(t, dir, "\".\" = \"/srv\"\n")
	const warning = "is inside the mapped folder"
	if r := mustFledge(t, dir, nil, "build"); !strings.Contains(r.stderr, warning) {
		t.Errorf("no warning for an artifact inside the mapped recipe folder:\n%s", r.stderr)
	}
	if r := mustFledge(t, dir, nil, "build", "-o", filepath.Join(t.TempDir(), "img")); strings.Contains(r.stderr, warning) {
		t.Errorf("warning for an artifact outside every mapping:\n%s", r.stderr)
	}
}

// TestBuildXz writes an xz artifact the way the kernel needs it (CRC32
// check, which xz(1) confirms), and fledge reads it back.
func TestBuildXz(t *testing.T) {
	needTool(t, "xz", "xz-utils")
	dir := copyExample(t, "custom")
	out := filepath.Join(t.TempDir(), "img")
	mustFledge(t, dir, nil, "build", "-o", out, "--compression", "xz")
	run(t, "", "xz", "-t", out+".cpio.xz")
	if list := run(t, "", "xz", "--robot", "--list", out+".cpio.xz"); !strings.Contains(list, "\tCRC32\t") {
		t.Errorf("xz --list: the check is not CRC32, which the kernel requires:\n%s", list)
	}
	if r := mustFledge(t, dir, nil, "ls", out+".cpio.xz", "/init"); strings.TrimSpace(r.stdout) != "/init" {
		t.Errorf("fledge ls of the xz artifact: %q", r.stdout)
	}
}

// TestBuildTakesARecipeArgument: like ls, check and boot, build takes the
// recipe as its argument; the content, not the name, tells it from a
// Dockerfile.
func TestBuildTakesARecipeArgument(t *testing.T) {
	dir := copyExample(t, "none")
	parent := filepath.Dir(dir)
	mustFledge(t, parent, nil, "build", "none/fledge.toml")
	if _, err := os.Stat(filepath.Join(dir, "plugin.cpio.gz")); err != nil {
		t.Errorf("build none/fledge.toml wrote no plugin.cpio.gz beside the recipe: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "fledge.toml"), filepath.Join(dir, "recipe")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img")
	mustFledge(t, parent, nil, "build", "none/recipe", "-o", out)
	if _, err := os.Stat(out + ".cpio.gz"); err != nil {
		t.Errorf("build of a recipe named recipe: %v", err)
	}
	r := fledge(t, parent, nil, "build", "none/recipe", "-c", "none/recipe")
	if r.code != 1 || !strings.Contains(r.stderr, "give the recipe once") {
		t.Errorf("build RECIPE -c RECIPE: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
}

// TestOutputExtensionChoosesTheCompression: -o app.cpio.zst writes zstd,
// for build and pack, over the recipe's output.compression too.
func TestOutputExtensionChoosesTheCompression(t *testing.T) {
	dir := copyExample(t, "none")
	appendRecipe(t, dir, "[output]\ncompression = \"lz4\"\n")
	out := t.TempDir()
	magic := map[string]string{"x.cpio.zst": "\x28\xb5\x2f\xfd", "x.cpio.gz": "\x1f\x8b", "x.cpio": "070701"}
	for name, want := range magic {
		for _, verb := range []string{"build", "pack"} {
			p := filepath.Join(out, verb+"-"+name)
			mustFledge(t, dir, nil, verb, "-o", p)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%s -o %s: %v", verb, p, err)
			}
			if !bytes.HasPrefix(data, []byte(want)) {
				t.Errorf("%s -o %s: starts with % x, want % x", verb, name, data[:min(len(data), 6)], want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "build-x.manifest.json")); err != nil {
		t.Errorf("build -o x.cpio.zst: no x.manifest.json: %v", err)
	}
}

// appendRecipe adds text at the end of dir/fledge.toml.
func appendRecipe(t *testing.T, dir, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestBusyBoxAndAgentHints: a BusyBox given as a path builds, a checksum
// mismatch names the sha256 to set, and an offline build without the agent
// in the cache says how to get one.
func TestBusyBoxAndAgentHints(t *testing.T) {
	dir := copyExample(t, "none")
	text := readRecipe(t, dir)
	write := func(s string) { writeRecipe(t, dir, s) }
	write(strings.Replace(text, "file:///usr/bin/busybox", "/usr/bin/busybox", 1))
	mustFledge(t, dir, nil, "build", "-o", filepath.Join(t.TempDir(), "img"))

	write(strings.Replace(text, "busybox_url = \"file:///usr/bin/busybox\"", "busybox_url = \"file:///usr/bin/busybox\"\nbusybox_sha256 = \""+strings.Repeat("0", 64)+"\"", 1))
	r := fledge(t, dir, nil, "build", "-o", filepath.Join(t.TempDir(), "img"))
	want := "if file:///usr/bin/busybox is the BusyBox you want, set source.busybox_sha256 = \"" + sha256File(t, "/usr/bin/busybox") + "\""
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("checksum mismatch: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}

	write("version = \"1\"\nstrategy = \"initramfs\"\n[source]\nbusybox_url = \"file:///usr/bin/busybox\"\n")
	r = fledge(t, dir, []string{"XDG_CACHE_HOME=" + t.TempDir()}, "build", "--offline", "-o", filepath.Join(t.TempDir(), "img"))
	if r.code != 1 || !strings.Contains(r.stderr, "run once without --offline to fill it, or use a local agent (agent.source_strategy = \"local\" with agent.path)") {
		t.Errorf("offline without the agent: exit %d, stderr %q; want the ways to get one", r.code, r.stderr)
	}
}

// readRecipe returns the text of dir/fledge.toml.
func readRecipe(t *testing.T, dir string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(dir, "fledge.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// writeRecipe replaces dir/fledge.toml with text.
func writeRecipe(t *testing.T, dir, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "fledge.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
