package overlay

import (
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, p, data string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func TestMappingsModesAndLinks(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app"), "app", 0o600)
	writeFile(t, filepath.Join(root, "tree/bin/tool"), "tool", 0o644)
	writeFile(t, filepath.Join(root, "tree/lib/libx.so.1"), "lib", 0o644)
	writeFile(t, filepath.Join(root, "tree/share/doc.txt"), "doc", 0o600)
	writeFile(t, filepath.Join(root, "tree/share/run.sh"), "#!/bin/sh", 0o700)
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "tree/share/hostlink")); err != nil {
		t.Fatal(err)
	}
	l := Mappings(root, []Mapping{
		{Host: filepath.Join(root, "app"), Guest: "/usr/bin/app"},
		{Host: filepath.Join(root, "tree"), Guest: "/opt/tree"},
	})
	v, err := (&Stack{Layers: []Layer{Skeleton(), l}}).View()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/usr/bin/app":             "-rwxr-xr-x",
		"/opt/tree":                "drwxr-xr-x",
		"/opt/tree/bin/tool":       "-rwxr-xr-x",
		"/opt/tree/lib/libx.so.1":  "-rwxr-xr-x",
		"/opt/tree/share/doc.txt":  "-rw-r--r--",
		"/opt/tree/share/run.sh":   "-rwxr-xr-x",
		"/opt/tree/share/hostlink": "Lrwxrwxrwx",
	}
	for p, mode := range want {
		n, ok := v.Get(p)
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if got := n.Mode().String(); got != mode {
			t.Errorf("%s mode %s, want %s", p, got, mode)
		}
		if n.Layer != "mappings" || n.UID != 0 || !n.MTime.IsZero() {
			t.Errorf("%s: layer %s uid %d mtime %v; want mappings, root, no host time", p, n.Layer, n.UID, n.MTime)
		}
	}
	if n, _ := v.Get("/opt/tree/share/hostlink"); n.Linkname != "/etc/passwd" {
		t.Errorf("symlink target %q: it must be kept verbatim, not followed", n.Linkname)
	}
	if n, _ := v.Get("/usr/bin"); n.Layer != "skeleton" {
		t.Errorf("/usr/bin came from %s; a mapping's parent must not replace the skeleton's directory", n.Layer)
	}
}

func TestMappingsAreLive(t *testing.T) {
	root := t.TempDir()
	app := filepath.Join(root, "app")
	writeFile(t, app, "v1", 0o755)
	l := Mappings(root, []Mapping{{Host: app, Guest: "/app"}})
	ents, err := l.Entries()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, app, "version two", 0o755)
	r, err := ents[0].Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	if string(data) != "version two" || r.Size() != int64(len(data)) {
		t.Errorf("read %q (size %d); a mapping must read the host file when opened", data, r.Size())
	}
}

func TestMappingsRefuseEscapes(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "s", 0o600)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "app")); err != nil {
		t.Fatal(err)
	}
	_, err := Mappings(root, []Mapping{{Host: filepath.Join(root, "app"), Guest: "/app"}}).Entries()
	if err == nil || !strings.Contains(err.Error(), "outside the recipe folder") {
		t.Fatalf("err = %v, want a refusal to follow the link out of the recipe folder", err)
	}
	// An absolute path outside the folder is the author's explicit choice.
	ents, err := Mappings(root, []Mapping{{Host: filepath.Join(outside, "secret"), Guest: "/s"}}).Entries()
	if err != nil || len(ents) != 1 {
		t.Fatalf("explicit absolute mapping: %v, %d entries", err, len(ents))
	}
}

func TestHostFileRefusesSwappedSymlink(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	if err := os.Symlink("/etc/hostname", p); err != nil {
		t.Fatal(err)
	}
	if _, err := HostFile(p).Open(); err == nil {
		t.Fatal("HostFile followed a symlink")
	}
}

// TestMappingsLeaveTheWorkspaceOut: mapping the recipe's own folder must
// not put fledge's workspace (the mount's edits) into the image.
func TestMappingsLeaveTheWorkspaceOut(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "app"), "app", 0o755)
	writeFile(t, filepath.Join(root, Workspace, "edits", "etc", "secret"), "edit", 0o644)
	writeFile(t, filepath.Join(root, "sub", Workspace, "kept"), "a folder of the user's", 0o644)
	ents, err := Mappings(root, []Mapping{{Host: root, Guest: "/srv"}}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		got[e.Path] = true
	}
	if got["/srv/.fledge"] || got["/srv/.fledge/edits/etc/secret"] {
		t.Errorf("the workspace was mapped into the image: %v", got)
	}
	if !got["/srv/app"] || !got["/srv/sub/.fledge/kept"] {
		t.Errorf("mapped files missing: %v", got)
	}
}

// Watch names every folder a mapped folder lists (the workspace left out,
// as Entries leaves it out) and each mapping's own path, as given and
// resolved.
func TestMappingsWatch(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "tree", "a", "b", "f"), "f", 0o644)
	writeFile(t, filepath.Join(root, "tree", Workspace, "edits", "x"), "edit", 0o644)
	writeFile(t, filepath.Join(root, "real-app"), "app", 0o755)
	if err := os.Symlink("real-app", filepath.Join(root, "app")); err != nil {
		t.Fatal(err)
	}
	tree, app := filepath.Join(root, "tree"), filepath.Join(root, "app")
	missing := filepath.Join(root, "not-yet")
	var l Layer = Mappings(tree, []Mapping{{Host: tree, Guest: "/srv"}, {Host: app, Guest: "/bin/app"}, {Host: missing, Guest: "/x"}})
	live, ok := l.(Live)
	if !ok {
		t.Fatal("the mappings layer is not Live")
	}
	dirs, names := live.Watch()
	real := func(p string) string {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	wantDirs := []string{real(tree), real(filepath.Join(tree, "a")), real(filepath.Join(tree, "a", "b"))}
	wantNames := []string{tree, real(tree), app, real(filepath.Join(root, "real-app")), missing}
	if strings.Join(dirs, "\n") != strings.Join(wantDirs, "\n") {
		t.Errorf("dirs:\n%s\nwant:\n%s", strings.Join(dirs, "\n"), strings.Join(wantDirs, "\n"))
	}
	if strings.Join(names, "\n") != strings.Join(wantNames, "\n") {
		t.Errorf("names:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}
}

// TestMappingsKeepTheHostStat: a mapped file's entry carries the lstat its
// walk took (the packer's stat index judges the file by it instead of
// statting it again), for a file in a mapped folder and a mapped file.
func TestMappingsKeepTheHostStat(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tree/a", "single"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := Mappings(dir, []Mapping{{Host: filepath.Join(dir, "tree"), Guest: "/t"}, {Host: filepath.Join(dir, "single"), Guest: "/s"}}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range ents {
		if e.Type != Regular {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(string(e.Content.(HostFile)), &st); err != nil {
			t.Fatal(err)
		}
		if e.HostStat == nil || *e.HostStat != st {
			t.Fatalf("%s: HostStat %+v, the file's lstat %+v", e.Path, e.HostStat, st)
		}
		seen++
	}
	if seen != 2 {
		t.Fatalf("%d regular entries, want 2", seen)
	}
}

// TestMappingsWalkInOrder: a mapped tree read on all cores gives its
// entries in filepath.WalkDir's order, each with the stat of its own path,
// and a socket in it fails the walk, naming it.
func TestMappingsWalkInOrder(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"b/z", "b/a/deep/x", "a", "c/d/e/f/g", "B", "b/a/y", "c/d/e2"} {
		writeFile(t, filepath.Join(root, "tree", p), p, 0o644)
	}
	if err := os.Symlink("a", filepath.Join(root, "tree/link")); err != nil {
		t.Fatal(err)
	}
	var want []string
	err := filepath.WalkDir(filepath.Join(root, "tree"), func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(filepath.Join(root, "tree"), p)
		want = append(want, filepath.Join("/srv", rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := Mappings(root, []Mapping{{Host: filepath.Join(root, "tree"), Guest: "/srv"}}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Path)
		if e.Type == Regular && (e.HostStat == nil || e.HostStat.Size != int64(len(strings.TrimPrefix(e.Path, "/srv/")))) {
			t.Errorf("%s: host stat %+v, not its own", e.Path, e.HostStat)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("entries in the order\n%v\nwant WalkDir's\n%v", got, want)
	}
	sock := filepath.Join(root, "tree/c/d/sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Mappings(root, []Mapping{{Host: filepath.Join(root, "tree"), Guest: "/srv"}}).Entries()
	if err == nil || !strings.Contains(err.Error(), sock+" is a socket") {
		t.Fatalf("mapping a tree with a socket: %v, want an error naming %s", err, sock)
	}
}
