package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pjdfstestArchive is the suite's source, kept outside the repository (see
// its README there).
const pjdfstestArchive = "pjdfstest-85a8aea.tar.gz"

// TestPjdfstest runs the whole POSIX file-system suite pjdfstest in a
// writable mount of the default recipe, shared with every user (the tests
// switch to other uids), and requires every test of every file to pass.
// The workspace it leaves must then mount again, pack and diff.
func TestPjdfstest(t *testing.T) {
	needRoot(t)
	prove := needTool(t, "prove", "perl")
	suite := buildPjdfstest(t)
	dir := copyExample(t, "default")
	mnt := sharedMountpoint(t)
	m := startMount(t, dir, mnt, "--share=write")
	work := filepath.Join(mnt, "tmp", "pjdfstest")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// Two files at a time: each makes its own names, and the ctime tests
	// sleep, so the suite takes half the time with the same results.
	cmd := exec.Command(prove, "-r", "-j2", filepath.Join(suite, "tests"))
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Result: PASS") {
		t.Errorf("pjdfstest in the mount: %v\n%s", err, failures(string(out)))
	}
	files := regexp.MustCompile(`Files=(\d+), Tests=(\d+)`).FindStringSubmatch(string(out))
	if files == nil || files[1] != "238" {
		t.Errorf("pjdfstest ran %v files, want all 238:\n%s", files, tail(string(out), 20))
	} else {
		t.Logf("pjdfstest: %s files, %s tests", files[1], files[2])
	}
	if err := os.WriteFile(filepath.Join(work, "kept"), []byte("after pjdfstest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.umount(t)

	m = startMount(t, dir, mnt, "--share=write")
	if b, err := os.ReadFile(filepath.Join(work, "kept")); err != nil || string(b) != "after pjdfstest\n" {
		t.Errorf("after a remount: %q, %v", b, err)
	}
	shown := tree(t, mnt)
	m.umount(t)
	art := filepath.Join(t.TempDir(), "p.cpio.gz")
	r := mustFledge(t, dir, nil, "pack", "-o", art)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("pack warns about the workspace pjdfstest left:\n%s", r.stderr)
	}
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	gnuCPIO(t, art, x, "-idm", "--quiet", "--no-absolute-filenames")
	if d := diffMaps(shown, tree(t, x)); d != "" {
		t.Errorf("packed tree differs from the mount (- mount, + extracted):\n%s", d)
	}
	if d := fledge(t, dir, nil, "diff"); d.code != 1 || !strings.Contains(d.stdout, "/tmp/pjdfstest/kept") {
		t.Errorf("fledge diff (exit %d) lacks the file kept after pjdfstest:\n%s%s", d.code, d.stdout, d.stderr)
	}
}

// buildPjdfstest unpacks and builds the suite from ../shared/suites once
// per archive: the build is kept under the CI cache, named by the
// archive's sha256, so later runs reuse it.
func buildPjdfstest(t *testing.T) string {
	t.Helper()
	for _, tool := range []struct{ name, pkg string }{{"autoreconf", "autoconf"}, {"automake", "automake"}, {"make", "make"}, {"cc", "gcc"}} {
		needTool(t, tool.name, tool.pkg)
	}
	archive := filepath.Join(repoRoot(t), "..", "shared", "suites", pjdfstestArchive)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatalf("pjdfstest source: %v (the suites live in ../shared/suites beside the repository)", err)
	}
	sum := sha256.Sum256(data)
	cache := os.Getenv("FLEDGE_CI_CACHE")
	if cache == "" {
		cache = "/var/cache/fledge-ci"
	}
	dest := filepath.Join(cache, "pjdfstest-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dest, "pjdfstest", "pjdfstest")); err == nil {
		return filepath.Join(dest, "pjdfstest")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, ".pjdfstest-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "pjdfstest")
	steps := [][]string{
		{"tar", "-xzf", archive, "-C", tmp},
		{"autoreconf", "-ifs"},
		{"./configure"},
		{"make", "pjdfstest"},
	}
	for i, s := range steps {
		c := exec.Command(s[0], s[1:]...)
		if i > 0 {
			c.Dir = src
		}
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("building pjdfstest: %v: %v\n%s", s, err, tail(string(out), 30))
		}
	}
	// The tests run as other users too, from wherever the build lives.
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		// Another run built it meanwhile: its build is as good.
		if _, serr := os.Stat(filepath.Join(dest, "pjdfstest", "pjdfstest")); serr != nil {
			t.Fatalf("keeping the pjdfstest build: %v", err)
		}
	}
	return filepath.Join(dest, "pjdfstest")
}

// sharedMountpoint makes a mountpoint other users can reach.
func sharedMountpoint(t *testing.T) string {
	t.Helper()
	mnt := newMountpoint(t)
	for _, d := range []string{filepath.Dir(mnt), filepath.Dir(filepath.Dir(mnt))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return mnt
}

// failures keeps prove's lines about files that did not pass.
func failures(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasSuffix(l, " ok") && l != "" {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
