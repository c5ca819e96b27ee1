package packer

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os/exec"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

// requireTool fails (never skips) when a host tool the test reads the
// output with is missing, naming the Debian package that provides it.
func requireTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: install the Debian package %s", tool, pkg)
	}
}

var testEpoch = time.Unix(1700000000, 0).UTC()

// richLayer holds one of everything the format must carry.
func richLayer() *overlay.Static {
	return &overlay.Static{LayerName: "test", List: []overlay.Entry{
		{Path: "/", Type: overlay.Dir, Perm: 0o755},
		{Path: "/bin/busybox", Type: overlay.Regular, Perm: 0o755, Content: overlay.Bytes("#!busybox\n")},
		{Path: "/bin/sh", Type: overlay.Symlink, Perm: 0o777, Linkname: "busybox"},
		{Path: "/bin/su", Type: overlay.Regular, Perm: 0o755 | fs.ModeSetuid, Content: overlay.Bytes("su")},
		{Path: "/tmp", Type: overlay.Dir, Perm: 0o777 | fs.ModeSticky},
		{Path: "/srv/shared", Type: overlay.Dir, Perm: 0o775 | fs.ModeSetgid, GID: 50},
		{Path: "/empty", Type: overlay.Dir, Perm: 0o700},
		{Path: "/etc/owned", Type: overlay.Regular, Perm: 0o640, UID: 1000, GID: 100, Content: overlay.Bytes("mine\n")},
		{Path: "/etc/dated", Type: overlay.Regular, Perm: 0o644, MTime: time.Unix(1234567890, 0), Content: overlay.Bytes("old\n")},
		{Path: "/etc/zero", Type: overlay.Regular, Perm: 0o644},
		{Path: "/etc/abs", Type: overlay.Symlink, Perm: 0o777, Linkname: "/bin/busybox"},
		{Path: "/lib/a", Type: overlay.Regular, Perm: 0o644, LinkID: "L", Content: overlay.Bytes("linked data\n")},
		{Path: "/lib/b", Type: overlay.Regular, Perm: 0o644, LinkID: "L", Content: overlay.Bytes("linked data\n")},
		{Path: "/usr/c", Type: overlay.Regular, Perm: 0o644, LinkID: "L", Content: overlay.Bytes("linked data\n")},
		{Path: "/dev/console", Type: overlay.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "/dev/big", Type: overlay.CharDev, Perm: 0o600, Major: 240, Minor: 1048575},
		{Path: "/dev/sda", Type: overlay.BlockDev, Perm: 0o660, GID: 6, Major: 8, Minor: 0},
		{Path: "/run/fifo", Type: overlay.FIFO, Perm: 0o620},
		{Path: "/run/sock", Type: overlay.Socket, Perm: 0o755},
	}}
}

func viewOf(t testing.TB, layers ...overlay.Layer) *overlay.View {
	t.Helper()
	st := overlay.Stack{Layers: layers, Epoch: testEpoch}
	v, err := st.View()
	if err != nil {
		t.Fatalf("building the view: %v", err)
	}
	return v
}

func pack(t testing.TB, v *overlay.View, compression string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(context.Background(), v, &b, Options{Compression: compression}); err != nil {
		t.Fatalf("Write(%s): %v", compression, err)
	}
	return b.Bytes()
}

func readAll(t testing.TB, c overlay.Content) []byte {
	t.Helper()
	r, err := c.Open()
	if err != nil {
		t.Fatalf("opening content: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading content: %v", err)
	}
	return b
}
