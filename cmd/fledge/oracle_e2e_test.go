package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/qemu"
)

// The kernel is the oracle: archives whose entries conflict in every way we
// know of are booted behind a small archive whose /init reports what the
// kernel built, and the report must equal fledge's view of the same
// artifact. Each case lives under its own top folder /cN, so all of them
// cost one boot. The archives are written raw here, since the packer never
// writes such conflicts.
func TestKernelIsTheOracle(t *testing.T) {
	t.Parallel()
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	dir := t.TempDir()
	art := filepath.Join(dir, "oracle.cpio")
	var img bytes.Buffer
	img.Write(reporterArchive(t))
	for _, a := range oracleArchives() {
		img.Write(a.bytes())
	}
	if err := os.WriteFile(art, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	guest, guestLinks := guestReport(t, art)
	view := viewReport(t, dir, art)
	var paths []string
	for p := range guest {
		paths = append(paths, p)
	}
	for p := range view {
		if _, ok := guest[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	if len(guest) < 40 {
		t.Fatalf("the guest reported only %d paths; the reporter did not run as expected: %v", len(guest), guest)
	}
	for _, p := range paths {
		g, inGuest := guest[p]
		v, inView := view[p]
		switch {
		case !inView:
			t.Errorf("%s: the kernel made %s, fledge shows nothing", p, g)
		case !inGuest:
			t.Errorf("%s: fledge shows %s, the kernel made nothing", p, v)
		case g != v:
			t.Errorf("%s:\n  kernel %s\n  fledge %s", p, g, v)
		}
	}
	if vl := viewLinks(t, dir, art); guestLinks != vl {
		t.Errorf("hard links differ:\n  kernel %s\n  fledge %s", guestLinks, vl)
	}
}

// oracleObject is what is compared for one path: type, permissions,
// owner, size (not for directories, whose size is the file system's
// business), link target, device numbers and the content's sha256.
type oracleObject struct {
	Type         string
	Perm         int
	UID, GID     int
	Size         int64
	Link         string
	Major, Minor uint32
	Sha256       string
}

func (o oracleObject) String() string {
	return fmt.Sprintf("%s %04o %d:%d size %d link %q dev %d,%d sha %.12s", o.Type, o.Perm, o.UID, o.GID, o.Size, o.Link, o.Major, o.Minor, o.Sha256)
}

// newcArchive is a raw newc archive, written by hand so it can hold
// anything the format can say.
type newcArchive struct{ recs []newcRecord }

type newcRecord struct {
	name                 string
	mode                 uint32
	uid, gid, ino, nlink uint32
	mtime                uint32
	dev                  [2]uint32 // of the packing host: scope of ino
	rdev                 [2]uint32
	data                 string
}

func (a *newcArchive) add(r newcRecord) {
	if r.nlink == 0 {
		r.nlink = 1
		if r.mode&0o170000 == 0o040000 {
			r.nlink = 2
		}
	}
	if r.ino == 0 {
		r.ino = uint32(1000 + len(a.recs))
	}
	a.recs = append(a.recs, r)
}

func (a *newcArchive) dir(name string, perm uint32) {
	a.add(newcRecord{name: name, mode: 0o040000 | perm})
}
func (a *newcArchive) file(name string, perm uint32, data string) {
	a.add(newcRecord{name: name, mode: 0o100000 | perm, data: data})
}
func (a *newcArchive) link(name, target string) {
	a.add(newcRecord{name: name, mode: 0o120777, data: target})
}
func (a *newcArchive) hard(name string, ino uint32, data string) {
	a.add(newcRecord{name: name, mode: 0o100644, ino: ino, nlink: 2, data: data})
}

func (a *newcArchive) bytes() []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for _, r := range append(a.recs, newcRecord{name: "TRAILER!!!", nlink: 1}) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			r.ino, r.mode, r.uid, r.gid, r.nlink, r.mtime, len(r.data), r.dev[0], r.dev[1], r.rdev[0], r.rdev[1], len(r.name)+1, 0)
		b.WriteString(r.name + "\x00")
		pad()
		b.WriteString(r.data)
		pad()
	}
	return b.Bytes()
}

// oracleArchives are the cases: each comment says what the kernel does,
// which the test does not assume; it only compares.
func oracleArchives() []*newcArchive {
	a := &newcArchive{}
	// c1: a file, then entries below it: the kernel keeps the file and
	// drops the rest (ENOTDIR).
	a.dir("c1", 0o755)
	a.file("c1/a", 0o644, "file-a")
	a.file("c1/a/b", 0o644, "child")
	a.dir("c1/a/d", 0o755)
	a.link("c1/a/l", "x")

	// c2: a folder, then a file or symlink of the same name: an empty
	// folder is replaced, a full one stays and the newcomer is dropped.
	a.dir("c2", 0o755)
	a.dir("c2/full", 0o750)
	a.file("c2/full/x", 0o644, "in full")
	a.file("c2/full", 0o644, "file over full dir")
	a.dir("c2/empty", 0o755)
	a.file("c2/empty", 0o600, "file over empty dir")
	a.dir("c2/emptylink", 0o755)
	a.link("c2/emptylink", "full")
	a.dir("c2/fulllink", 0o755)
	a.file("c2/fulllink/y", 0o644, "y")
	a.link("c2/fulllink", "full")
	a.dir("c2/nod", 0o755)
	a.add(newcRecord{name: "c2/nod", mode: 0o020600, rdev: [2]uint32{1, 3}})
	a.dir("c2/fullnod", 0o755)
	a.file("c2/fullnod/z", 0o644, "z")
	a.add(newcRecord{name: "c2/fullnod", mode: 0o020600, uid: 4, rdev: [2]uint32{1, 3}})

	// c3: symlinked parents are followed, relative, absolute and chained.
	a.dir("c3", 0o755)
	a.dir("c3/real", 0o700)
	a.link("c3/rel", "real")
	a.link("c3/abs", "/c3/real")
	a.link("c3/chain", "rel")
	a.link("c3/up", "../c3/./real")
	a.file("c3/rel/f", 0o644, "via rel")
	a.file("c3/abs/g", 0o644, "via abs")
	a.file("c3/chain/h", 0o644, "via chain")
	a.dir("c3/up/sub", 0o711)
	a.file("c3/up/sub/i", 0o644, "via up")
	a.link("c3/tofile", "real/f")
	a.file("c3/tofile/j", 0o644, "below a link to a file")

	// c4: dangling, looping and missing parents: dropped.
	a.dir("c4", 0o755)
	a.link("c4/dang", "nowhere")
	a.file("c4/dang/f", 0o644, "lost")
	a.dir("c4/dang/d", 0o755)
	a.link("c4/loop", "loop")
	a.file("c4/loop/x", 0o644, "lost")
	a.file("c4/missing/f", 0o644, "no parent")
	a.dir("c4/missing2/d", 0o755)

	// c5: duplicates of every type against every type.
	a.dir("c5", 0o755)
	a.file("c5/ff", 0o644, "first, longer")
	a.add(newcRecord{name: "c5/ff", mode: 0o100600, uid: 7, gid: 8, data: "second"})
	a.file("c5/fe", 0o644, "data")
	a.file("c5/fe", 0o640, "")
	a.dir("c5/dd", 0o755)
	a.file("c5/dd/keep", 0o644, "kept")
	a.add(newcRecord{name: "c5/dd", mode: 0o040700, uid: 5, gid: 6})
	a.link("c5/ss", "one")
	a.link("c5/ss", "two")
	a.file("c5/fs", 0o644, "file then link")
	a.link("c5/fs", "ff")
	a.link("c5/sf", "ff")
	a.file("c5/sf", 0o755, "link then file")
	a.file("c5/fd", 0o644, "file then dir")
	a.dir("c5/fd", 0o700)
	a.link("c5/sd", "dd")
	a.dir("c5/sd", 0o751)
	a.add(newcRecord{name: "c5/nn", mode: 0o020666, rdev: [2]uint32{1, 3}})
	a.add(newcRecord{name: "c5/nn", mode: 0o020600, uid: 3, rdev: [2]uint32{1, 5}})
	a.add(newcRecord{name: "c5/nb", mode: 0o020666, rdev: [2]uint32{1, 3}})
	a.add(newcRecord{name: "c5/nb", mode: 0o060660, rdev: [2]uint32{7, 0}})
	a.add(newcRecord{name: "c5/pp", mode: 0o010644})
	a.add(newcRecord{name: "c5/pp", mode: 0o010600})
	a.file("c5/setuid", 0o4755, "suid")

	// c6: hard links: data on the first member, on the last, on both; a
	// member whose path is taken; a group whose first member was dropped;
	// a group truncated through a later plain file; same ino, other dev.
	a.dir("c6", 0o755)
	a.hard("c6/a", 100, "first has data")
	a.hard("c6/b", 100, "")
	a.hard("c6/c", 101, "")
	a.hard("c6/d", 101, "last has data")
	a.hard("c6/e", 102, "one")
	a.hard("c6/f", 102, "two two")
	a.file("c6/g", 0o644, "plain, replaced by a link")
	a.hard("c6/h", 103, "group")
	a.hard("c6/g", 103, "")
	a.hard("c6/nodir/i", 104, "lost with its parent")
	a.hard("c6/j", 104, "linked to nothing")
	a.hard("c6/k", 105, "kk")
	a.hard("c6/l", 105, "")
	a.file("c6/k", 0o600, "new")
	a.hard("c6/m", 106, "dev one")
	a.add(newcRecord{name: "c6/n", mode: 0o100644, ino: 106, nlink: 2, dev: [2]uint32{8, 1}, data: "dev two"})
	a.add(newcRecord{name: "c6/o", mode: 0o100644, ino: 107, nlink: 2, data: "mode one"})
	a.add(newcRecord{name: "c6/p", mode: 0o100700, uid: 9, ino: 107, nlink: 2})
	a.add(newcRecord{name: "c6/q", mode: 0o010644, ino: 108, nlink: 2})
	a.add(newcRecord{name: "c6/r", mode: 0o010600, ino: 108, nlink: 2})

	// c7: what the kernel skips or refuses: a folder or device with data,
	// an unknown file type (which still clears the path), a symlink target
	// with a NUL.
	a.dir("c7", 0o755)
	a.add(newcRecord{name: "c7/dirdata", mode: 0o040755, data: "junk"})
	a.add(newcRecord{name: "c7/noddata", mode: 0o020644, rdev: [2]uint32{1, 3}, data: "junk"})
	a.file("c7/unknown", 0o644, "cleared by an unknown type")
	a.add(newcRecord{name: "c7/unknown", mode: 0o170644})
	a.link("c7/nul", "before\x00after")
	a.file("./c7/x", 0o644, "dot slash")
	a.file("c7//./y", 0o644, "dots and slashes")

	// c9: an empty symlink target, replacing a file, and a path through it.
	a.dir("c9", 0o755)
	a.add(newcRecord{name: "c9/e", mode: 0o100644, data: "replaced by an empty link"})
	a.link("c9/e", "")
	a.add(newcRecord{name: "c9/e/x", mode: 0o020644, rdev: [2]uint32{1, 3}})

	// c8 spans two archives: the link table ends with each archive.
	a.dir("c8", 0o755)
	a.hard("c8/a", 200, "archive one")
	b := &newcArchive{}
	b.hard("c8/b", 200, "archive two")
	b.file("c1/a", 0o600, "second archive wins")
	b.dir("c2/full", 0o700)
	return []*newcArchive{a, b}
}

// reporterArchive holds BusyBox and an /init that walks every case and
// prints one line per path, then powers off.
func reporterArchive(t *testing.T) []byte {
	t.Helper()
	bb, err := os.ReadFile(needTool(t, "busybox", "busybox-static"))
	if err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/busybox sh
b=/bin/busybox
echo oracle-begin
for top in /c*; do
	$b find "$top" | while read -r p; do
		s=$($b stat -c '%F|%a|%u|%g|%s|%i|%h|%t|%T' "$p")
		l=; h=
		if [ -L "$p" ]; then l=$($b readlink "$p"); elif [ -f "$p" ]; then h=$($b sha256sum "$p" | $b cut -d' ' -f1); fi
		echo "oracle|$p|$s|$l|$h"
	done
done
echo oracle-end
$b poweroff -f
`
	a := &newcArchive{}
	a.dir("bin", 0o755)
	a.add(newcRecord{name: "bin/busybox", mode: 0o100755, data: string(bb)})
	a.add(newcRecord{name: "init", mode: 0o100755, data: script})
	return a.bytes()
}

var oracleLine = regexp.MustCompile(`^oracle\|([^|]*)\|([^|]*)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)\|([0-9a-f]+)\|([0-9a-f]+)\|([^|]*)\|([0-9a-f]*)$`)

// guestReport boots the artifact and parses what its /init printed: the
// objects by path, and the groups of regular files sharing an inode.
func guestReport(t *testing.T, art string) (map[string]oracleObject, string) {
	t.Helper()
	res, err := qemu.Boot(context.Background(), qemu.Config{
		Kernel: testKernel(t), Initrd: art, Expect: regexp.MustCompile(`^oracle-end$`),
		// Kernel messages would interleave with the report.
		Append: "loglevel=1", Timeout: 4 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("oracle boot: %s\n%s", res.Reason, res.Output)
	}
	types := map[string]string{
		"regular file": "file", "regular empty file": "file", "directory": "dir", "symbolic link": "symlink",
		"character special file": "chardev", "block special file": "blockdev", "fifo": "fifo", "socket": "socket",
	}
	out := map[string]oracleObject{}
	inodes := map[string][]string{}
	for _, line := range strings.Split(string(res.Output), "\n") {
		line = strings.TrimRight(line, "\r")
		if !strings.HasPrefix(line, "oracle|") {
			continue
		}
		m := oracleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unreadable report line %q", line)
		}
		perm, _ := strconv.ParseInt(m[3], 8, 32)
		num := func(s string, base int) int64 { n, _ := strconv.ParseInt(s, base, 64); return n }
		o := oracleObject{
			Type: types[m[2]], Perm: int(perm), UID: int(num(m[4], 10)), GID: int(num(m[5], 10)), Size: num(m[6], 10),
			Major: uint32(num(m[9], 16)), Minor: uint32(num(m[10], 16)), Link: m[11], Sha256: m[12],
		}
		if o.Type == "" {
			t.Fatalf("unknown type %q in %q", m[2], line)
		}
		if o.Type == "dir" {
			o.Size = 0
		}
		if o.Type != "file" {
			o.Sha256 = ""
		}
		if o.Type != "chardev" && o.Type != "blockdev" {
			o.Major, o.Minor = 0, 0
		}
		out[m[1]] = o
		// fledge's views group hard links of regular files only; other
		// linked nodes show as entries with the same metadata.
		if o.Type == "file" && m[8] != "1" {
			inodes[m[7]] = append(inodes[m[7]], m[1])
		}
	}
	return out, linkGroups(inodes)
}

// linkGroups writes groups of paths in one canonical order.
func linkGroups(groups map[string][]string) string {
	var all []string
	for _, ps := range groups {
		sort.Strings(ps)
		all = append(all, strings.Join(ps, "="))
	}
	sort.Strings(all)
	return strings.Join(all, " ")
}

// viewReport is fledge's view of the cases, from `fledge ls -l --json`,
// with contents hashed from the gen_init_cpio listing's extracted files.
func viewReport(t *testing.T, dir, art string) map[string]oracleObject {
	t.Helper()
	var rows []struct {
		Path, Type, Perm string
		UID, GID         int
		Size             int64
		Link             string `json:"link_target"`
		Major, Minor     uint32
	}
	r := mustFledge(t, dir, nil, "ls", "-l", "--json", art)
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	shas := map[string]string{}
	for _, l := range initListFiles(t, dir, art) {
		for _, p := range l.names {
			shas[p] = l.sha
		}
	}
	out := map[string]oracleObject{}
	for _, row := range rows {
		if !strings.HasPrefix(row.Path, "/c") {
			continue
		}
		perm, _ := strconv.ParseInt(row.Perm, 8, 32)
		o := oracleObject{Type: row.Type, Perm: int(perm), UID: row.UID, GID: row.GID, Size: row.Size, Link: row.Link, Major: row.Major, Minor: row.Minor, Sha256: shas[row.Path]}
		if o.Type == "dir" {
			o.Size = 0
		}
		out[row.Path] = o
	}
	return out
}

type initListFile struct {
	names []string // the file and its hard links
	sha   string
}

// caseFolders are listed in gen_init_cpio's format, which cannot express
// c9's empty symlink target (and has no regular file to hash there).
var caseFolders = []string{"/c1", "/c2", "/c3", "/c4", "/c5", "/c6", "/c7", "/c8"}

// initListFiles reads the file lines of `fledge ls --format gen_init_cpio
// --extract-to`, which name each content by its sha256 and list hard links
// together.
func initListFiles(t *testing.T, dir, art string) []initListFile {
	t.Helper()
	blobs := filepath.Join(dir, "blobs")
	var list string
	for _, top := range caseFolders {
		list += mustFledge(t, dir, nil, "ls", art, top, "--format", "gen_init_cpio", "--extract-to", blobs).stdout
	}
	var out []initListFile
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "file" {
			continue
		}
		out = append(out, initListFile{names: append([]string{f[1]}, f[6:]...), sha: filepath.Base(f[2])})
	}
	return out
}

// viewLinks lists fledge's hard-link groups under the case folders.
func viewLinks(t *testing.T, dir, art string) string {
	t.Helper()
	groups := map[string][]string{}
	for i, l := range initListFiles(t, dir, art) {
		if len(l.names) > 1 {
			groups[strconv.Itoa(i)] = l.names
		}
	}
	return linkGroups(groups)
}
