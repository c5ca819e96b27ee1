package edits

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

func editsStack(t *testing.T) (*overlay.Stack, *Edits, *overlay.Static) {
	t.Helper()
	lower := &overlay.Static{LayerName: "busybox", List: []overlay.Entry{
		{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes("bb"), Size: 2},
		{Path: "/bin/sh", Type: overlay.Symlink, Perm: 0o777, Linkname: "busybox"},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, UID: 7, GID: 8, Content: overlay.Bytes("hi\n"), Size: 3},
		{Path: "/usr/share/doc/a", Type: overlay.Regular, Perm: 0o600, Content: overlay.Bytes("a"), Size: 1},
	}}
	e := Open(Dir(t.TempDir()))
	return &overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(), lower, e}}, e, lower
}

// splitStack is editsStack with the view of the layers below the edits
// and the view of all, built on it as a mount does.
func splitStack(t *testing.T) (st *overlay.Stack, e *Edits, lower, v *overlay.View) {
	t.Helper()
	st, e, _ = editsStack(t)
	lower = view(t, &overlay.Stack{Layers: st.Layers[:len(st.Layers)-1]})
	v, err := lower.With(e)
	if err != nil {
		t.Fatal(err)
	}
	return st, e, lower, v
}

func view(t *testing.T, s *overlay.Stack) *overlay.View {
	t.Helper()
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fullListing renders a view with shadows, so tests compare everything
// a view says, not only what wins (the same as overlay's stack_test.go).
func fullListing(t *testing.T, v *overlay.View) string {
	t.Helper()
	var b strings.Builder
	v.Walk(func(n *overlay.Node) error {
		fmt.Fprintf(&b, "%s %s %s %o %s shadows:", n.Path, n.Type, n.Layer, n.UnixMode(), n.Linkname)
		for _, s := range n.Shadowed {
			b.WriteString(" " + s.Layer)
		}
		b.WriteByte('\n')
		return nil
	})
	for _, p := range slices.Sorted(maps.Keys(v.Removed)) {
		fmt.Fprintf(&b, "removed %s by %s\n", p, v.Removed[p].Layer)
	}
	return b.String()
}

func TestEditsWhiteoutsOpaqueAndChanges(t *testing.T) {
	st, e, _ := editsStack(t)
	if _, err := os.Stat(e.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening the layer created %s", e.Dir())
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Remove(view(t, st), "/bin/sh"))
	must(e.Remove(view(t, st), "/usr/share/doc/a"))
	must(e.Remove(view(t, st), "/usr/share/doc"))
	must(e.Create(view(t, st), overlay.Entry{Path: "/usr/share/doc", Type: overlay.Dir, Perm: 0o755}))
	must(e.Create(view(t, st), overlay.Entry{Path: "/etc/new", Type: overlay.Regular, Perm: 0o640}))
	mode := uint32(0o700)
	must(e.SetAttr(view(t, st), "/etc/motd", Attr{Mode: &mode}))
	must(e.Link(view(t, st), "/bin/busybox", "/bin/init"))

	var wh syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(e.Dir(), "bin", "sh"), &wh); err != nil || wh.Mode&syscall.S_IFMT != syscall.S_IFCHR || wh.Rdev != 0 {
		t.Errorf("no whiteout (character device 0/0) for /bin/sh: %v, mode %o rdev %d", err, wh.Mode, wh.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(e.Dir(), "usr", "share", "doc", ".wh..wh..opq")); err != nil {
		t.Errorf("a directory made over a deleted one is not opaque: %v", err)
	}
	v := view(t, st)
	if _, ok := v.Get("/bin/sh"); ok {
		t.Error("/bin/sh still in the view")
	}
	if d, _ := v.Get("/usr/share/doc"); d == nil || len(v.Children(d)) != 0 {
		t.Errorf("recreated /usr/share/doc shows the old contents")
	}
	a, _ := v.Get("/bin/busybox")
	b, _ := v.Get("/bin/init")
	if a == nil || b == nil || a.LinkID == "" || a.LinkID != b.LinkID {
		t.Errorf("hard link lost: %+v %+v", a, b)
	}
	if m, _ := v.Get("/etc/motd"); m.UID != 7 || m.GID != 8 || m.Perm != 0o700 {
		t.Errorf("chmod copy-up: uid %d gid %d perm %v, want 7 8 0700 (owner kept)", m.UID, m.GID, m.Perm)
	}

	lower := &overlay.Stack{Layers: st.Layers[:len(st.Layers)-1]}
	changes, err := e.Changes(view(t, lower))
	must(err)
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind+" "+c.Path)
	}
	want := "added /bin/init|deleted /bin/sh|added /etc/new|mode /etc/motd|changed /usr/share/doc"
	if g := strings.Join(got, "|"); !sameSet(g, want) {
		t.Errorf("changes:\n got %s\nwant %s", g, want)
	}

	must(e.Reset("/bin/sh"))
	if _, ok := view(t, st).Get("/bin/sh"); !ok {
		t.Error("reset /bin/sh did not bring it back")
	}
	must(e.Reset("/"))
	if _, ok := view(t, st).Get("/etc/new"); ok {
		t.Error("reset / kept /etc/new")
	}
}

func sameSet(a, b string) bool {
	m := map[string]int{}
	for _, s := range strings.Split(a, "|") {
		m[s]++
	}
	for _, s := range strings.Split(b, "|") {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// Names from FUSE are untrusted: nothing may climb out of the layer or be
// taken for a whiteout, and a symlink stored in the layer is never followed.
func TestEditsRefuseEscapes(t *testing.T) {
	st, e, _ := editsStack(t)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/../../x", "/etc/a\x00b", "/etc/.wh..wh.motd", "/etc/.wh..wh..opq", "etc/rel", "/etc/"} {
		err := e.Create(view(t, st), overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o644})
		if err == nil {
			t.Errorf("create %q succeeded", p)
		}
	}
	// A symlink in the layer pointing outside: writing "below" it must fail.
	if err := e.Create(view(t, st), overlay.Entry{Path: "/evil", Type: overlay.Symlink, Perm: 0o777, Linkname: outside}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.OpenFile(view(t, st), "/evil/file", os.O_RDWR); err == nil {
		t.Error("opened a file through a symlink stored in the layer")
	}
	if err := e.SetAttr(view(t, st), "/evil", Attr{Mode: new(uint32)}); err != nil {
		t.Errorf("chmod of a symlink: %v", err)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o755 {
		t.Errorf("chmod of the layer's symlink changed its host target to %v", fi.Mode())
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Errorf("something was written outside the layer: %v", ents)
	}
	var errno syscall.Errno
	err := e.Create(view(t, st), overlay.Entry{Path: "/etc/.wh..wh.x", Type: overlay.Regular})
	if !errors.As(err, &errno) || errno != syscall.EPERM {
		t.Errorf("reserved name: %v, want EPERM", err)
	}
}

// An edit the host swapped for a FIFO is refused when it is opened, for
// reading or writing, instead of waiting for the FIFO's other end.
func TestEditsOpenRefusesAFIFOSwappedIn(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/note", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	v := view(t, st)
	host := filepath.Join(e.Dir(), "etc", "note")
	if err := os.Remove(host); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(host, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_RDWR} {
		done := make(chan error, 1)
		go func() {
			f, err := e.OpenFile(v, "/etc/note", flag)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("open with flags %#x of an edit swapped for a FIFO succeeded", flag)
			}
		case <-time.After(10 * time.Second):
			// Let the blocked open go, so the test can end.
			if f, err := os.OpenFile(host, os.O_RDWR, 0); err == nil {
				f.Close()
			}
			<-done
			t.Fatalf("open with flags %#x of an edit swapped for a FIFO waited for the other end", flag)
		}
	}
}

// A folder of the second format takes names starting with ".wh." as any
// other (its whiteouts are devices); one of the first keeps them reserved,
// since there ".wh.NAME" deletes NAME.
func TestEditsWhiteoutNamesByFormat(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/.wh.motd", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatalf("a name starting with .wh.: %v", err)
	}
	e.Reload()
	v := view(t, st)
	if _, ok := v.Get("/etc/.wh.motd"); !ok {
		t.Error("/etc/.wh.motd is not shown")
	}
	if _, ok := v.Get("/etc/motd"); !ok {
		t.Error("the file /etc/.wh.motd deleted /etc/motd")
	}
	oldFormat(t, e)
	var errno syscall.Errno
	err := e.Create(view(t, st), overlay.Entry{Path: "/etc/.wh.x", Type: overlay.Regular})
	if !errors.As(err, &errno) || errno != syscall.EPERM {
		t.Errorf("a .wh. name in a folder of the first format: %v, want EPERM", err)
	}
}

// oldFormat makes e's folder one of the first format, as earlier versions
// left it.
func oldFormat(t *testing.T, e *Edits) {
	t.Helper()
	if err := os.Remove(filepath.Join(e.Dir(), formatMarker)); err != nil {
		t.Fatal(err)
	}
	e.format2.Store(false)
	e.Reload()
}

// Packing reads the layer; it must not need root, even with root-owned
// device nodes and files in it.
func TestEditsReadableWithoutRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes device nodes and then reads them as nobody: run it as root")
	}
	st, e, _ := editsStack(t)
	if err := e.Create(view(t, st), overlay.Entry{Path: "/dev/ttyS0", Type: overlay.CharDev, Perm: 0o600, Major: 4, Minor: 64}); err != nil {
		t.Fatal(err)
	}
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/owned", Type: overlay.Regular, Perm: 0o644, UID: 1234}); err != nil {
		t.Fatal(err)
	}
	// A folder only root may list costs nobody that folder, not the layer.
	if err := e.Create(view(t, st), overlay.Entry{Path: "/private", Type: overlay.Dir, Perm: 0o700}); err != nil {
		t.Fatal(err)
	}
	if err := e.Create(view(t, st), overlay.Entry{Path: "/private/secret", Type: overlay.Regular, Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(e.Dir()))
	for p := root; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chmod(filepath.Join(root, ".fledge"), 0o755)
	os.Chmod(e.Dir(), 0o755)
	prog := `package main
import ("fmt";"os";"github.com/volantvm/fledge/overlay/edits")
func main() {
	ed := edits.Open(os.Args[1])
	ents, err := ed.Entries()
	if err != nil { fmt.Println("error:", err); os.Exit(1) }
	for _, e := range ents { fmt.Println(e.Path, e.Type, e.Major, e.Minor, e.UID) }
	for _, p := range ed.Problems() { fmt.Println(p) }
}`
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o644)
	bin := filepath.Join(dir, "lister")
	build := exec.Command("go", "build", "-o", bin, filepath.Join(dir, "main.go"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.Chmod(dir, 0o755)
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, e.Dir()).CombinedOutput()
	if err != nil {
		t.Fatalf("listing the edits as nobody: %v\n%s", err, out)
	}
	for _, want := range []string{"/dev/ttyS0 chardev 4 64 0", "/etc/owned file 0 0 1234", "edits of /private left out: open private: permission denied; `fledge reset /private` drops them"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("listing as nobody lacks %q:\n%s", want, out)
		}
	}
}

// A create that fails leaves a deleted lower file deleted: the whiteout
// goes only once the new object is in place.
func TestEditsFailedCreateKeepsTheWhiteout(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Remove(view(t, st), "/etc/motd"); err != nil {
		t.Fatal(err)
	}
	unreadable := overlay.HostFile(filepath.Join(t.TempDir(), "missing"))
	err := e.Create(view(t, st), overlay.Entry{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, Content: unreadable})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create with unreadable content: %v, want a not-exist error", err)
	}
	if n, ok := view(t, st).Get("/etc/motd"); ok {
		t.Errorf("a failed create brought the deleted /etc/motd back from layer %s", n.Layer)
	}
}

// A crash between creating an object and removing the whiteout it
// replaces leaves both in the folder; the object wins, whatever the
// names' order on disk ("-x" lists before ".wh.-x").
func TestEditsObjectWinsOverItsLeftoverWhiteout(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/-x", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/y", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	oldFormat(t, e)
	for _, name := range []string{".wh.-x", ".wh.y", ".wh.motd"} {
		if err := os.WriteFile(filepath.Join(e.Dir(), "etc", name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.Reload() // as the next process reads the folder
	v := view(t, st)
	for _, p := range []string{"/etc/-x", "/etc/y"} {
		if n, ok := v.Get(p); !ok || n.Layer != LayerName {
			t.Errorf("%s is hidden by a whiteout of its own layer", p)
		}
	}
	if _, ok := v.Get("/etc/motd"); ok {
		t.Error("a lone whiteout no longer deletes /etc/motd")
	}
}

// A rename that fails leaves a deleted lower object at the destination
// deleted. The failure is real: the source's folder in the layer is made
// immutable, so the kernel refuses to move the file out of it.
func TestEditsFailedRenameKeepsTheWhiteout(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Remove(view(t, st), "/bin/sh"); err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	if err := e.SetAttr(view(t, st), "/etc/motd", Attr{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(e.Dir(), "etc")
	if out, err := exec.Command("chattr", "+i", etc).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (package e2fsprogs, on ext4, as root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", etc).Run() })
	if err := e.Rename(view(t, st), "/etc/motd", "/bin/sh"); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("rename out of an immutable folder: %v, want EPERM", err)
	}
	if n, ok := view(t, st).Get("/bin/sh"); ok {
		t.Errorf("a failed rename brought the deleted /bin/sh back from layer %s", n.Layer)
	}
}

// TestEditsResetWaitsForMutations: fledge reset runs in its own process
// while a mount may be mid-change; it must wait for the change to end
// instead of interleaving with it.
func TestEditsResetWaitsForMutations(t *testing.T) {
	st, mount, _ := editsStack(t)
	if err := mount.Remove(view(t, st), "/etc/motd"); err != nil {
		t.Fatal(err)
	}
	release, err := mount.Hold()
	if err != nil {
		t.Fatal(err)
	}
	other := Open(mount.dir) // as the reset command opens it
	done := make(chan error, 1)
	go func() { done <- other.Reset("/etc/motd") }()
	select {
	case err := <-done:
		release()
		t.Fatalf("reset ran during a mutation (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mount.Reload() // as a mount does when the reset touches the stamp
	if _, ok := view(t, st).Get("/etc/motd"); !ok {
		t.Error("reset did not bring /etc/motd back")
	}
}

// The entries an Edits keeps up to date change by change are exactly what
// a full read of the folder finds, after every kind of change: random
// creates, removes, renames (of folders too), hard links, chmods, copy-ups
// and writes, checked against a fresh read after each one. A view kept
// up to date by the changes alone (View.Update) is what a full merge
// gives, and the view it was updated from stays as it was.
func TestEditsFollowTheirChanges(t *testing.T) {
	st, e, lower, kept := splitStack(t)
	updates := 0
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"/etc/motd", "/bin/sh", "/bin/busybox", "/usr/share/doc", "/usr/share/doc/a", "/etc", "/usr/share"}
	pick := func() string { return names[rng.IntN(len(names))] }
	fresh := func(p string) string {
		q := fmt.Sprintf("%s/n%d", pick(), rng.IntN(1000))
		if _, ok := view(t, st).Get(path.Dir(q)); !ok || strings.Count(q, "/") > 5 {
			q = fmt.Sprintf("/etc/n%d", rng.IntN(1000))
		}
		names = append(names, q)
		return q
	}
	for i := range 400 {
		v := view(t, st)
		var op string
		var err error
		switch rng.IntN(9) {
		case 0:
			p := fresh("")
			typ := []overlay.Type{overlay.Regular, overlay.Dir, overlay.Symlink}[rng.IntN(3)]
			op, err = "create "+p, e.Create(v, overlay.Entry{Path: p, Type: typ, Perm: 0o644, Linkname: "target"})
		case 1:
			p := pick()
			op, err = "remove "+p, e.Remove(v, p)
		case 2:
			a, b := pick(), fresh("")
			op, err = "rename "+a+" "+b, e.Rename(v, a, b)
		case 3:
			a, b := pick(), fresh("")
			op, err = "link "+a+" "+b, e.Link(v, a, b)
		case 4:
			p, mode := pick(), uint32(rng.IntN(0o777))
			op, err = "chmod "+p, e.SetAttr(v, p, Attr{Mode: &mode})
		case 5:
			p := pick()
			op, err = "copy-up "+p, e.CopyUp(v, p)
		case 6:
			p := pick()
			op = "write " + p
			var f *os.File
			if f, err = e.OpenFile(v, p, os.O_RDWR); err == nil {
				_, err = f.WriteString(strings.Repeat("x", rng.IntN(100)))
				f.Close()
				// Writes through an open file are not a change of the
				// layer's tree; the mount reads sizes from the file.
				e.Reload()
			}
		case 7:
			p := pick()
			op, err = "reset "+p, e.Reset(p)
		case 8:
			p := fresh("")
			if rng.IntN(2) == 0 {
				p = pick()
			}
			op = "create and open " + p
			var f *os.File
			if f, _, err = e.CreateFile(v, overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o4750, UID: 7, GID: 8}); err == nil {
				f.Close()
			}
		}
		_ = err // many random changes are refused (ENOENT, EEXIST, ENOTDIR): that is a case too
		got, err := e.Entries()
		if err != nil {
			t.Fatalf("%d %s: entries: %v", i, op, err)
		}
		want, err := Open(e.Dir()).Entries()
		if err != nil {
			t.Fatalf("%d %s: fresh read: %v", i, op, err)
		}
		if g, w := entryList(got), entryList(want); g != w {
			t.Fatalf("after change %d (%s), kept entries differ from a fresh read:\nkept:\n%s\nfresh:\n%s", i, op, g, w)
		}
		before := fullListing(t, kept)
		next, changes, err := kept.Update(lower, e)
		if err != nil {
			t.Fatalf("%d %s: update: %v", i, op, err)
		}
		if g, w := fullListing(t, next), fullListing(t, view(t, st)); g != w {
			t.Fatalf("after change %d (%s), the updated view differs from a full merge:\nupdated:\n%s\nfull:\n%s", i, op, g, w)
		}
		if after := fullListing(t, kept); after != before {
			t.Fatalf("after change %d (%s), Update changed the view it started from", i, op)
		}
		if len(changes) > 0 {
			updates++
		}
		kept = next
	}
	if updates < 100 {
		t.Errorf("only %d of 400 changes were taken as a delta; the rest merged everything again", updates)
	}
}

// entryList prints entries one per line, sorted, for comparison.
func entryList(es []overlay.Entry) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = fmt.Sprintf("%+v", e)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A path is merged again from what the layers beneath have there only
// where no parent in the edits hides it: a file created and removed again
// in a folder that replaced a deleted lower folder leaves that folder
// empty, not showing the lower file of the same name.
func TestUpdateKeepsWhatOpaqueFoldersHide(t *testing.T) {
	st, e, lower, v := splitStack(t)
	var err error
	step := func(what string, change func(v *overlay.View) error) {
		t.Helper()
		if err := change(v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v, _, err = v.Update(lower, e); err != nil {
			t.Fatalf("%s: update: %v", what, err)
		}
		if g, w := fullListing(t, v), fullListing(t, view(t, st)); g != w {
			t.Fatalf("after %s, the updated view differs from a full merge:\nupdated:\n%s\nfull:\n%s", what, g, w)
		}
	}
	step("rm /usr/share/doc/a", func(v *overlay.View) error { return e.Remove(v, "/usr/share/doc/a") })
	step("rmdir /usr/share/doc", func(v *overlay.View) error { return e.Remove(v, "/usr/share/doc") })
	step("mkdir /usr/share/doc", func(v *overlay.View) error {
		return e.Create(v, overlay.Entry{Path: "/usr/share/doc", Type: overlay.Dir, Perm: 0o755})
	})
	step("create /usr/share/doc/a", func(v *overlay.View) error {
		return e.Create(v, overlay.Entry{Path: "/usr/share/doc/a", Type: overlay.Regular, Perm: 0o644})
	})
	step("rm /usr/share/doc/a again", func(v *overlay.View) error { return e.Remove(v, "/usr/share/doc/a") })
	if n, ok := v.Get("/usr/share/doc"); !ok || len(v.Children(n)) != 0 {
		t.Fatalf("/usr/share/doc = %v, %v; want an empty folder", n, ok)
	}
}

// Any name and path the kernel takes can be stored: a name of NAME_MAX
// bytes is deleted (its whiteout needs no longer name), and a path deeper
// than PATH_MAX below the folder's own place on the host is created, read
// back, its content opened, and reset.
func TestEditsLongNamesAndDeepPaths(t *testing.T) {
	long := strings.Repeat("n", 255)
	lower := &overlay.Static{LayerName: "rootfs", List: []overlay.Entry{
		{Path: "/etc/" + long, Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("x"), Size: 1},
	}}
	e := Open(Dir(t.TempDir()))
	st := &overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(), lower, e}}
	if err := e.Remove(view(t, st), "/etc/"+long); err != nil {
		t.Fatalf("deleting a lower file named with 255 bytes: %v", err)
	}
	if _, ok := view(t, st).Get("/etc/" + long); ok {
		t.Error("the 255-byte name is still shown after its delete")
	}
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/" + long, Type: overlay.Dir, Perm: 0o755}); err != nil {
		t.Fatalf("a folder in place of the deleted file: %v", err)
	}

	deep := "/tmp"
	for len(e.Dir())+len(deep) < 4300 {
		deep += "/" + strings.Repeat("d", 200)
		if err := e.Create(view(t, st), overlay.Entry{Path: deep, Type: overlay.Dir, Perm: 0o755}); err != nil {
			t.Fatalf("mkdir at depth %d: %v", len(deep), err)
		}
	}
	file := deep + "/f"
	if err := e.Create(view(t, st), overlay.Entry{Path: file, Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("deep\n")}); err != nil {
		t.Fatal(err)
	}
	e.Reload()
	n, ok := view(t, st).Get(file)
	if !ok {
		t.Fatalf("the %d-byte deep path is not read back", len(e.Dir())+len(file))
	}
	r, err := n.Content.Open()
	if err != nil {
		t.Fatalf("opening the deep file: %v", err)
	}
	b := make([]byte, 16)
	k, _ := r.ReadAt(b, 0)
	r.Close()
	if string(b[:k]) != "deep\n" {
		t.Errorf("deep file reads %q", b[:k])
	}
	if p := e.Problems(); len(p) != 0 {
		t.Errorf("problems reading the folder: %v", p)
	}
	if err := e.Reset("/tmp"); err != nil {
		t.Fatalf("reset of the deep tree: %v", err)
	}
	e.Reload()
	if _, ok := view(t, st).Get(file); ok {
		t.Error("the deep file survived its reset")
	}
}

// Leftovers of a crash (a copy-up's temporary file) are never edits, and
// old-style whiteout files of earlier versions still delete.
func TestEditsLeftoversAndOldWhiteouts(t *testing.T) {
	st, e, _ := editsStack(t)
	if err := e.Create(view(t, st), overlay.Entry{Path: "/etc/new", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	oldFormat(t, e)
	etc := filepath.Join(e.Dir(), "etc")
	os.WriteFile(filepath.Join(etc, ".wh..wh.tmp.99.1"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(etc, ".wh.motd"), nil, 0o600)
	e.Reload()
	v := view(t, st)
	if _, ok := v.Get("/etc/motd"); ok {
		t.Error("an old-style whiteout no longer deletes")
	}
	for _, k := range v.Children(mustGet(t, v, "/etc")) {
		if strings.HasPrefix(path.Base(k.Path), ".wh.") {
			t.Errorf("%s shown", k.Path)
		}
	}
	if err := e.Create(v, overlay.Entry{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(etc, ".wh.motd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the old-style whiteout stays beside the new object: %v", err)
	}
}

func mustGet(t *testing.T, v *overlay.View, p string) *overlay.Node {
	t.Helper()
	n, ok := v.Get(p)
	if !ok {
		t.Fatalf("%s not in the view", p)
	}
	return n
}

// CreateFile makes a new file in place where the name is free and over a
// whiteout like Create does, and returns it open: owner, mode (setuid
// kept) and time are the entry's either way.
func TestEditsCreateFile(t *testing.T) {
	st, e, _ := editsStack(t)
	mtime := time.Unix(1700000000, 0).UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Remove(view(t, st), "/etc/motd"))
	for _, p := range []string{"/etc/new", "/etc/motd"} {
		f, _, err := e.CreateFile(view(t, st), overlay.Entry{Path: p, Type: overlay.Regular, Perm: 0o4750 | fs.ModeSetuid, UID: 7, GID: 8, MTime: mtime})
		must(err)
		_, err = f.WriteString("data")
		must(err)
		must(f.Close())
		n, ok := view(t, st).Get(p)
		if !ok || n.Layer != LayerName || n.UnixMode() != 0o104750 || n.UID != 7 || n.GID != 8 || !n.MTime.Equal(mtime) {
			t.Fatalf("%s = %+v, want an edit 0104750 7:8 at %v", p, n, mtime)
		}
		if got, _ := os.ReadFile(filepath.Join(e.Dir(), p)); string(got) != "data" {
			t.Errorf("%s holds %q", p, got)
		}
	}
	if _, _, err := e.CreateFile(view(t, st), overlay.Entry{Path: "/etc/new", Type: overlay.Regular, Perm: 0o644}); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("CreateFile of an existing name: %v, want EEXIST", err)
	}
}

// A workspace made by an ordinary user (its format marker is theirs) keeps the
// image's types, owners, modes and device numbers in user.fledge.stat on
// regular files of the host, whoever changes it (here root); an object
// with a value that cannot be read is left out and named, the rest read on.
func TestEditsOfAUserKeepMetadataInXattrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to give the edits folder to another user")
	}
	st, e, _ := editsStack(t)
	if err := os.MkdirAll(e.Dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.Dir(), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	// A user's workspace is told by the owner of its format marker.
	marker := filepath.Join(e.Dir(), formatMarker)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(marker, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Create(view(t, st), overlay.Entry{Path: "/dev/zero", Type: overlay.CharDev, Perm: 0o666, UID: 3, GID: 4, Major: 1, Minor: 5}))
	must(e.Create(view(t, st), overlay.Entry{Path: "/etc/link", Type: overlay.Symlink, Perm: 0o777, UID: 5, GID: 6, Linkname: "../motd"}))
	uid, mode := 33, uint32(0o4755)
	must(e.SetAttr(view(t, st), "/bin/busybox", Attr{UID: &uid, Mode: &mode}))
	must(e.Create(view(t, st), overlay.Entry{Path: "/etc/plain", Type: overlay.Regular, Perm: 0o644}))
	for _, p := range []string{"dev/zero", "etc/link", "bin/busybox"} {
		fi, err := os.Lstat(filepath.Join(e.Dir(), p))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("host %s: %v, %v; want a regular file 0600", p, fi.Mode(), err)
		}
	}
	check := func(p string, mode uint32, uid, gid int, extra string) {
		t.Helper()
		n := mustGet(t, view(t, st), p)
		got := fmt.Sprintf("%o %d:%d %s%d,%d", n.UnixMode(), n.UID, n.GID, n.Linkname, n.Major, n.Minor)
		if want := fmt.Sprintf("%o %d:%d %s", mode, uid, gid, extra); got != want || n.Layer != LayerName {
			t.Errorf("%s = %s in layer %s, want %s", p, got, n.Layer, want)
		}
	}
	check("/dev/zero", 0o20666, 3, 4, "1,5")
	check("/etc/link", 0o120777, 5, 6, "../motd0,0")
	check("/bin/busybox", 0o104755, 33, 0, "0,0")
	// What the host cannot tell, an object without the attribute reads as
	// the user's: root's.
	must(syscall.Removexattr(filepath.Join(e.Dir(), "etc/plain"), "user.fledge.stat"))
	must(syscall.Setxattr(filepath.Join(e.Dir(), "dev/zero"), "user.fledge.stat", []byte("20666 0 0 0 0"), 0))
	e.Reload()
	check("/etc/plain", 0o100600, 0, 0, "0,0")
	if _, ok := view(t, st).Get("/dev/zero"); ok {
		t.Error("a device 0,0 in user.fledge.stat is read")
	}
	if p := e.Problems(); len(p) != 1 || p[0].Path != "/dev/zero" || !strings.Contains(p[0].String(), "deletion") {
		t.Errorf("problems %v, want /dev/zero's attribute", p)
	}
	check("/etc/link", 0o120777, 5, 6, "../motd0,0")
}
