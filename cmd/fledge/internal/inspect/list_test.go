package inspect

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
)

func TestModeString(t *testing.T) {
	cases := []struct {
		e    overlay.Entry
		want string
	}{
		{overlay.Entry{Type: overlay.Dir, Perm: 0o755}, "drwxr-xr-x"},
		{overlay.Entry{Type: overlay.Regular, Perm: 0o644}, "-rw-r--r--"},
		{overlay.Entry{Type: overlay.Regular, Perm: 0o755 | fs.ModeSetuid}, "-rwsr-xr-x"},
		{overlay.Entry{Type: overlay.Regular, Perm: 0o644 | fs.ModeSetuid | fs.ModeSetgid}, "-rwSr-Sr--"},
		{overlay.Entry{Type: overlay.Dir, Perm: 0o777 | fs.ModeSticky}, "drwxrwxrwt"},
		{overlay.Entry{Type: overlay.Dir, Perm: 0o776 | fs.ModeSticky}, "drwxrwxrwT"},
		{overlay.Entry{Type: overlay.Symlink, Perm: 0o777}, "lrwxrwxrwx"},
		{overlay.Entry{Type: overlay.CharDev, Perm: 0o600}, "crw-------"},
		{overlay.Entry{Type: overlay.BlockDev, Perm: 0o660}, "brw-rw----"},
		{overlay.Entry{Type: overlay.FIFO, Perm: 0o644}, "prw-r--r--"},
		{overlay.Entry{Type: overlay.Socket, Perm: 0o755}, "srwxr-xr-x"},
	}
	for _, tc := range cases {
		if got := ModeString(&tc.e); got != tc.want {
			t.Errorf("ModeString(%s %o) = %s, want %s", tc.e.Type, tc.e.Perm, got, tc.want)
		}
	}
}

var motdTime = time.Date(2024, 3, 5, 14, 7, 9, 0, time.UTC)

func sampleView(t *testing.T) *overlay.View {
	return view(t,
		layer("rootfs", file("/etc/motd", 0o644, "old\n"), dir("/usr/lib", 0o755), link("/usr/lib64", "lib")),
		layer("mappings", overlay.Entry{Path: "/etc/motd", Type: overlay.Regular, Perm: 0o600, UID: 7, GID: 8, Size: 5, MTime: motdTime, Content: overlay.Bytes("new!\n"), Source: "/src/motd"}),
	)
}

func TestListSubtreeAndFields(t *testing.T) {
	v := sampleView(t)
	rows, err := List(v, "/etc")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Path != "/etc" || rows[1].Path != "/etc/motd" {
		t.Fatalf("List(/etc) = %+v, want /etc then /etc/motd", rows)
	}
	want := Row{Path: "/etc/motd", Type: "file", Mode: "-rw-------", Perm: "0600", UID: 7, GID: 8, Size: 5,
		MTime: "2024-03-05T14:07:09Z", MTimeSec: motdTime.Unix(), Layer: "mappings", Source: "/src/motd", Shadowed: 1}
	if rows[1] != want {
		t.Fatalf("row = %+v\nwant  %+v", rows[1], want)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"path", "type", "mode", "perm", "uid", "gid", "size", "mtime", "mtime_unix", "layer", "source"} {
		if _, ok := back[1][key]; !ok {
			t.Errorf("JSON row lacks %q: %s", key, buf.String())
		}
	}
}

func TestListThroughSymlinkAndMissing(t *testing.T) {
	v := sampleView(t)
	rows, err := List(v, "/usr/lib64")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Path != "/usr/lib" {
		t.Fatalf("List(/usr/lib64) = %+v, want the directory it links to", rows)
	}
	if _, err := List(v, "/nope"); err == nil || !strings.Contains(err.Error(), "not in the image") {
		t.Fatalf("List(/nope) error = %v, want a not-in-the-image error", err)
	}
}

// WriteLong prints mtimes the way GNU cpio -tv does, in local time: the
// time of day within six months of now, the year otherwise.
func TestWriteLong(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+1", 3600)
	t.Cleanup(func() { time.Local = local })
	v := sampleView(t)
	rows, err := List(v, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{motdTime.AddDate(0, 1, 0), []string{
			"-rw------- 7:8    5 Mar  5 15:07 /etc/motd  [mappings (/src/motd)]\n",
			"crw------- 0:0 5, 1 Jan  1  1970 /dev/console  [skeleton]\n",
			"lrwxrwxrwx 0:0    3 Jan  1  1970 /usr/lib64 -> lib  [rootfs]\n",
		}},
		{motdTime.AddDate(1, 0, 0), []string{"-rw------- 7:8    5 Mar  5  2024 /etc/motd"}},
		{motdTime.Add(-time.Hour), []string{"-rw------- 7:8    5 Mar  5  2024 /etc/motd"}},
	} {
		var buf bytes.Buffer
		if err := WriteLong(&buf, rows, tc.now); err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.want {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("long listing at %s lacks %q:\n%s", tc.now, want, buf.String())
			}
		}
	}
}
