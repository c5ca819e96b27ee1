package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

// baseScript is the script the base initramfs holds; baseInit the /init
// the recipe maps over the base's own, which runs it.
const (
	baseScript = "#!/bin/sh\necho \"base-script: hello from the base\"\n"
	baseInit   = `#!/bin/sh
mount -t proc proc /proc
/opt/app/hello.sh
[ /etc/a -ef /etc/b ] && echo "mapped-init: /etc/a and /etc/b are one inode"
echo "mapped-init: done"
poweroff -f
`
)

// baseTime is the mtime of every entry of the base.
var baseTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// makeBase writes dir/base.cpio.gz with GNU cpio and gzip from a tree made
// as root: a script owned 1000:1000 (mode 0750), a hard-link pair, a
// character device, a host-absolute symlink and an /init of its own, all
// with the mtime baseTime. script is the script's text.
func makeBase(t *testing.T, dir, script string) string {
	t.Helper()
	needRoot(t) // for the owners and the device node the base holds
	needTool(t, "cpio", "cpio")
	needTool(t, "gzip", "gzip")
	tree := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{
		"opt/app/hello.sh": script,
		"etc/a":            "one inode, two names\n",
		"init":             "#!/bin/sh\necho base-init: the mapping should have replaced me\n",
	}
	for name, data := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []error{
		os.Chmod(filepath.Join(tree, "opt/app/hello.sh"), 0o750),
		os.Lchown(filepath.Join(tree, "opt/app/hello.sh"), 1000, 1000),
		os.Chmod(filepath.Join(tree, "etc/a"), 0o640),
		os.Link(filepath.Join(tree, "etc/a"), filepath.Join(tree, "etc/b")),
		os.Mkdir(filepath.Join(tree, "dev"), 0o755),
		exec.Command("mknod", filepath.Join(tree, "dev/ttyX"), "c", "4", "64").Run(),
		os.Symlink("/etc/shadow", filepath.Join(tree, "etc/hostlink")),
	} {
		if step != nil {
			t.Fatalf("making the base tree (as root): %v", step)
		}
	}
	stamp := exec.Command("sh", "-c", `find . -exec touch -h -d "$1" {} +`, "sh", baseTime.Format(time.RFC3339))
	stamp.Dir = tree
	if out, err := stamp.CombinedOutput(); err != nil {
		t.Fatalf("touch: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "base.cpio.gz")
	pack := exec.Command("sh", "-c", `find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > "$1"`, "sh", out)
	pack.Dir = tree
	if msg, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("packing the base with cpio: %v: %s", err, msg)
	}
	if err := os.Chtimes(out, baseTime, baseTime); err != nil {
		t.Fatal(err)
	}
	return out
}

// baseProject is a none-mode recipe over dir/base.cpio.gz that maps
// baseInit to /init.
func baseProject(t *testing.T) (dir, base string) {
	t.Helper()
	dir = t.TempDir()
	base = makeBase(t, dir, baseScript)
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(baseInit), 0o755); err != nil {
		t.Fatal(err)
	}
	writeRecipe(t, dir, `version = "1"
strategy = "initramfs"

[init]
none = true

[source]
busybox_url = "file:///usr/bin/busybox"
initramfs = "./base.cpio.gz"

[mappings]
"./init" = "/init"
`)
	return dir, base
}

// cpioListing is GNU cpio's verbose listing of a .cpio.gz, owners as
// numbers, one line per entry. A folder's link count is left out: cpio -o
// records the host's (2 plus its subfolders), fledge writes 2, and the
// kernel ignores it.
func cpioListing(t *testing.T, artifact string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(gnuCPIO(t, artifact, "", "-tv", "--numeric-uid-gid", "--quiet")), "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 2 && strings.HasPrefix(l, "d") {
			lines[i] = f[0] + " " + strings.Join(f[2:], " ")
		}
	}
	return lines
}

// TestBuildOverABaseInitramfs: source.initramfs puts an existing initramfs
// under the recipe's layers. Every entry of the base reaches the built
// image as GNU cpio lists it in the base (owner, mode, device, hard links,
// mtime), the mapping wins over the base's /init, the inspectors name the
// base, and the image boots: the mapped init runs the base's script.
func TestBuildOverABaseInitramfs(t *testing.T) {
	t.Parallel()
	dir, base := baseProject(t)
	out := filepath.Join(t.TempDir(), "app.cpio.gz")
	mustFledge(t, dir, nil, "build", "-o", out)

	got := cpioListing(t, out)
	for _, line := range cpioListing(t, base) {
		if strings.HasSuffix(line, " init") {
			continue // replaced by the mapping
		}
		if !slices.Contains(got, line) {
			t.Errorf("base entry missing or changed in the built image:\n  %s\nbuilt image:\n%s", line, strings.Join(got, "\n"))
		}
	}
	for _, want := range []string{"bin/busybox", "dev/console"} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, " "+want) }) {
			t.Errorf("built image lacks %s, which fledge adds over the base", want)
		}
	}

	real, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	rows := listRows(t, dir, "fledge.toml")
	i := slices.IndexFunc(rows, func(r inspect.Row) bool { return r.Path == "/opt/app/hello.sh" })
	if i < 0 || rows[i].Layer != "initramfs" || rows[i].Source != real {
		t.Errorf("ls of /opt/app/hello.sh: %+v; want layer initramfs, source %s", rows, real)
	}
	why := mustFledge(t, dir, nil, "why", "/init").stdout
	if !strings.Contains(why, "provided by layer mappings") || !strings.Contains(why, "initramfs") {
		t.Errorf("why /init does not show the mapping over the base's /init:\n%s", why)
	}
	mustFledge(t, dir, nil, "check")

	res := bootImage(t, out, `^mapped-init: done`)
	for _, line := range []string{"base-script: hello from the base", "mapped-init: /etc/a and /etc/b are one inode"} {
		if !hasLine(res.Output, line) {
			t.Errorf("console lacks %q:\n%s", line, res.Output)
		}
	}
	if bytes.Contains(res.Output, []byte("base-init:")) {
		t.Errorf("the base's /init ran instead of the mapped one:\n%s", res.Output)
	}
}

// TestChangedBaseChangesTheImage: the base is an input of every cache a
// build reads (the decompressed stream of a large base, the compressed
// pieces of the gzip output). A base changed in content only (same path,
// size and times) gives an image with the new content.
func TestChangedBaseChangesTheImage(t *testing.T) {
	t.Parallel()
	dir, base := baseProject(t)
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	// Past memLimit, so the decompressed base is kept in the stream cache.
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("fledge "), 17<<20/7), 0o644); err != nil {
		t.Fatal(err)
	}
	rebase := func(script string) {
		t.Helper()
		tmp := t.TempDir()
		makeBase(t, tmp, script)
		repack := exec.Command("sh", "-c", `set -e; mkdir t; cd t; gzip -dc "$1" | cpio -idm --quiet; cp "$2" opt/app/big; touch -d "$3" opt/app/big opt/app; find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > "$4"`,
			"sh", filepath.Join(tmp, "base.cpio.gz"), big, baseTime.Format(time.RFC3339), base)
		repack.Dir = tmp
		if msg, err := repack.CombinedOutput(); err != nil {
			t.Fatalf("repacking the base: %v: %s", err, msg)
		}
		if err := os.Chtimes(base, baseTime, baseTime); err != nil {
			t.Fatal(err)
		}
	}
	build := func(name string) (string, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), name+".cpio.gz")
		mustFledge(t, dir, env, "build", "-o", out)
		tree := t.TempDir()
		gnuCPIO(t, out, tree, "-idm", "--quiet", "--no-absolute-filenames", "opt/app/hello.sh")
		data, err := os.ReadFile(filepath.Join(tree, "opt/app/hello.sh"))
		if err != nil {
			t.Fatal(err)
		}
		return sha256File(t, out), string(data)
	}
	rebase(baseScript)
	sum1, data1 := build("first")
	changed := strings.Replace(baseScript, "hello", "HELLO", 1)
	rebase(changed)
	sum2, data2 := build("second")
	if data1 != baseScript || data2 != changed || sum1 == sum2 {
		t.Errorf("script in the image: %q then %q (want %q then %q); image sha256 %s then %s", data1, data2, baseScript, changed, sum1, sum2)
	}
}

// TestBaseErrors: a base that is no initramfs, or one holding a name that
// climbs with "..", is refused with the key and the file named, and
// nothing is written.
func TestBaseErrors(t *testing.T) {
	t.Parallel()
	climbing := &newcArchive{}
	climbing.file("../escape", 0o644, "out of the image\n")
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"not an initramfs": {[]byte("just some text\n"), "not an initramfs: found bytes 6a 75 73"},
		"climbing name":    {climbing.bytes(), `"../escape"`},
	} {
		t.Run(name, func(t *testing.T) {
			dir, base := baseProject(t)
			if err := os.WriteFile(base, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "app.cpio.gz")
			r := fledge(t, dir, nil, "build", "-o", out)
			real, err := filepath.EvalSymlinks(base)
			if err != nil {
				t.Fatal(err)
			}
			if r.code == 0 || !strings.Contains(r.stderr, "source.initramfs: artifact "+real) || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant a refusal naming source.initramfs, %s and %s", r.code, r.stderr, real, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s was written", out)
			}
		})
	}
}
