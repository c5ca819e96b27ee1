package packer

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// TestGNUCpioExtractsTheView packs every kind of entry, then has GNU cpio
// list and extract it (as root, so owners and device nodes are restored)
// and compares what landed on disk with the view.
func TestGNUCpioExtractsTheView(t *testing.T) {
	requireTool(t, "cpio", "cpio")
	requireTool(t, "gzip", "gzip")
	requireTool(t, "stat", "coreutils")
	if os.Geteuid() != 0 {
		t.Fatalf("extracting device nodes and owners needs root; run the tests as root")
	}
	v := viewOf(t, overlay.Skeleton(), richLayer())
	checkGNUCpio(t, v, pack(t, v, Gzip))
}

// TestGNUCpioExtractsASplicedPack does the same on a re-pack that took
// most of its pieces from the cache and compressed the changed file anew.
func TestGNUCpioExtractsASplicedPack(t *testing.T) {
	tree, cache := hostTree(t), t.TempDir()
	view := func() *overlay.View {
		return viewOf(t, overlay.Skeleton(), richLayer(),
			overlay.Mappings("", []overlay.Mapping{{Host: tree, Guest: "/src"}}))
	}
	packCached(t, view(), cache, 0)
	writeOld(t, filepath.Join(tree, "small/05"), []byte("changed, and shorter\n"))
	v := view()
	spliced, st := packCached(t, v, cache, 0)
	if st.reused.Load() == 0 || st.compressed.Load() == 0 {
		t.Fatalf("%d pieces reused, %d compressed: not a spliced pack", st.reused.Load(), st.compressed.Load())
	}
	checkGNUCpio(t, v, spliced)
}

// checkGNUCpio has gzip test and unpack the artifact, then GNU cpio list
// and extract it, and compares what landed on disk with the view.
func checkGNUCpio(t *testing.T, v *overlay.View, artifact []byte) {
	t.Helper()
	raw := checkGzip(t, artifact, nil)
	checkListing(t, v, gnuCpio(t, raw, "", "-itv"))
	dir := t.TempDir()
	gnuCpio(t, raw, dir, "-idm", "--no-absolute-filenames")
	err := v.Walk(func(n *overlay.Node) error {
		checkExtracted(t, v, n, filepath.Join(dir, n.Path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkNothingExtra(t, v, dir)
	checkHardLinks(t, dir, "lib/a", "lib/b", "usr/c")
}

// checkGzip runs `gzip -t` on gz and returns what `gzip -dc` makes of it,
// which must be want unless want is nil.
func checkGzip(t *testing.T, gz, want []byte) []byte {
	t.Helper()
	requireTool(t, "gzip", "gzip")
	art := filepath.Join(t.TempDir(), "a.cpio.gz")
	if err := os.WriteFile(art, gz, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gzip", "-t", art).CombinedOutput(); err != nil {
		t.Fatalf("gzip -t: %v\n%s", err, out)
	}
	raw, err := exec.Command("gzip", "-dc", art).Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}
	if want != nil && !bytes.Equal(raw, want) {
		t.Fatalf("gzip -dc gives %d bytes, not the %d of the archive", len(raw), len(want))
	}
	return raw
}

func gnuCpio(t *testing.T, archive []byte, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("cpio", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(archive)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio %v: %v\n%s", args, err, stderr.String())
	}
	return out.String()
}

// checkListing reads `cpio -itv`: one line per node, in walk order, with
// the mode string ls would print.
func checkListing(t *testing.T, v *overlay.View, listing string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(listing), "\n")
	var want []*overlay.Node
	v.Walk(func(n *overlay.Node) error { want = append(want, n); return nil })
	if len(lines) != len(want) {
		t.Fatalf("cpio -itv lists %d entries, the view has %d:\n%s", len(lines), len(want), listing)
	}
	// The archive need not follow the view's order (large files come
	// last), but each name once, and never before its folder.
	at := map[string]int{}
	for i, l := range lines {
		name := l[strings.LastIndex(l, " ")+1:]
		if f := strings.Fields(l); f[0][0] == 'l' {
			name = f[len(f)-3]
		}
		at[name] = i
	}
	for _, n := range want {
		name := archiveName(n.Path)
		i, ok := at[name]
		if !ok {
			t.Errorf("cpio -itv does not list %s", name)
			continue
		}
		if dir := path.Dir(name); dir != "." && at[dir] > i {
			t.Errorf("cpio -itv lists %s at line %d, before its folder (line %d)", name, i, at[dir])
		}
		if n.Type == overlay.Symlink {
			name += " -> " + n.Linkname
		}
		if f := strings.Fields(lines[i]); !strings.HasSuffix(lines[i], " "+name) || f[0] != lsMode(n) {
			t.Errorf("cpio -itv line %d = %q, want mode %s and name %q", i, lines[i], lsMode(n), name)
		}
	}
}

// lsMode is the mode column of ls -l, the independent notation cpio uses.
func lsMode(n *overlay.Node) string {
	s := []byte("?rwxrwxrwx")
	s[0] = map[overlay.Type]byte{overlay.Regular: '-', overlay.Dir: 'd', overlay.Symlink: 'l',
		overlay.CharDev: 'c', overlay.BlockDev: 'b', overlay.FIFO: 'p', overlay.Socket: 's'}[n.Type]
	for i := 0; i < 9; i++ {
		if n.Perm&(1<<(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	special := func(bit fs.FileMode, at int, set, unset byte) {
		if n.Perm&bit != 0 {
			if s[at] == '-' {
				s[at] = unset
			} else {
				s[at] = set
			}
		}
	}
	special(fs.ModeSetuid, 3, 's', 'S')
	special(fs.ModeSetgid, 6, 's', 'S')
	special(fs.ModeSticky, 9, 't', 'T')
	return string(s)
}

func checkExtracted(t *testing.T, v *overlay.View, n *overlay.Node, host string) {
	t.Helper()
	fi, err := os.Lstat(host)
	if err != nil {
		t.Errorf("%s: not extracted: %v", n.Path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Mode != n.UnixMode() && n.Path != "/" {
		t.Errorf("%s: extracted mode %#o, want %#o", n.Path, st.Mode, n.UnixMode())
	}
	if int(st.Uid) != n.UID || int(st.Gid) != n.GID {
		t.Errorf("%s: extracted owner %d:%d, want %d:%d", n.Path, st.Uid, st.Gid, n.UID, n.GID)
	}
	switch n.Type {
	case overlay.Regular:
		want := ""
		if n.Content != nil {
			want = string(readAll(t, n.Content))
		}
		if got, _ := os.ReadFile(host); string(got) != want {
			t.Errorf("%s: extracted %q, want %q", n.Path, got, want)
		}
		if !fi.ModTime().Equal(v.MTime(n)) {
			t.Errorf("%s: extracted mtime %v, want %v", n.Path, fi.ModTime(), v.MTime(n))
		}
	case overlay.Symlink:
		if got, _ := os.Readlink(host); got != n.Linkname {
			t.Errorf("%s: extracted link to %q, want %q", n.Path, got, n.Linkname)
		}
	case overlay.CharDev, overlay.BlockDev:
		out, err := exec.Command("stat", "-c", "%t:%T", host).Output()
		want := fmt.Sprintf("%x:%x", n.Major, n.Minor)
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: stat %%t:%%T = %q (%v), want %s", n.Path, out, err, want)
		}
	}
}

// checkNothingExtra fails on anything cpio extracted that the view lacks.
func checkNothingExtra(t *testing.T, v *overlay.View, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := v.Get("/" + rel); !ok {
			t.Errorf("cpio extracted %s, which is not in the view", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkHardLinks wants the names to be one inode with one link each.
func checkHardLinks(t *testing.T, dir string, names ...string) {
	t.Helper()
	var first *syscall.Stat_t
	for _, name := range names {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("hard link %s: %v", name, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink != uint64(len(names)) {
			t.Errorf("%s has %d links, want %d", name, st.Nlink, len(names))
		}
		if first == nil {
			first = st
		} else if st.Ino != first.Ino {
			t.Errorf("%s is inode %d, %s is %d: want one inode", name, st.Ino, names[0], first.Ino)
		}
	}
}
