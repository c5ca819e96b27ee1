package fusefs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// workspace is a recipe-like folder: a mapped host folder and file, a
// static BusyBox-like layer and the edits layer over them, the way a recipe
// stacks them.
type workspace struct {
	dir, mnt string
	host     string // mapped host file, at /usr/bin/app
	hostDir  string // mapped host folder, at /opt/data
	edits    *edits.Edits
	stack    *overlay.Stack // below the edits
	fsys     *FS
	srv      *fuse.Server
	opts     Options
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("FUSE tests mount for real and need root (/dev/fuse is 0600): run them as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("no /dev/fuse: install the fuse3 package and load the fuse module: %v", err)
	}
}

func newWorkspace(t testing.TB) *workspace {
	t.Helper()
	w := setupWorkspace(t)
	w.mount(t)
	return w
}

func setupWorkspace(t testing.TB) *workspace {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	w := &workspace{dir: dir, mnt: filepath.Join(dir, "mnt"), host: filepath.Join(dir, "app"), hostDir: filepath.Join(dir, "data")}
	must(t, os.Mkdir(w.mnt, 0o755))
	must(t, os.WriteFile(w.host, []byte("app v1\n"), 0o755))
	must(t, os.MkdirAll(filepath.Join(w.hostDir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(w.hostDir, "a.txt"), []byte("alpha\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(w.hostDir, "sub", "b.txt"), []byte("beta\n"), 0o644))
	busybox := &overlay.Static{LayerName: "busybox", List: []overlay.Entry{
		{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes("#!busybox\n"), Size: 10},
		{Path: "/bin/sh", Type: overlay.Symlink, Perm: 0o777, Linkname: "busybox"},
		{Path: "/bin/ls", Type: overlay.Symlink, Perm: 0o777, Linkname: "busybox"},
		{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o644, Content: overlay.Bytes("hello\n"), Size: 6},
	}}
	w.edits = edits.Open(edits.Dir(dir))
	w.stack = &overlay.Stack{Layers: []overlay.Layer{
		overlay.Skeleton(), busybox,
		overlay.Mappings(dir, []overlay.Mapping{{Host: w.host, Guest: "/usr/bin/app"}, {Host: w.hostDir, Guest: "/opt/data"}}),
	}}
	return w
}

func (w *workspace) mount(t testing.TB) {
	t.Helper()
	w.fsys = New(w.stack, w.edits)
	srv, err := Mount(w.mnt, w.fsys, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	t.Cleanup(func() { w.unmount(t) })
}

func (w *workspace) unmount(t testing.TB) {
	t.Helper()
	if w.srv == nil {
		return
	}
	if err := w.srv.Unmount(); err != nil {
		t.Errorf("unmount: %v", err)
		_ = Unmount(w.mnt, true)
	}
	w.srv = nil
}

func (w *workspace) path(p string) string { return filepath.Join(w.mnt, p) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
