package fusefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What readers expect: ls -l, stat, find, cat, readlink, du and getfattr
// show the image as it will be packed.
func TestReadersSeeThePackedImage(t *testing.T) {
	w := newWorkspace(t)
	for _, c := range []struct{ args, want string }{
		{"stat -c %A|%u|%g|%s|%Y|%N " + w.path("bin/sh"), "lrwxrwxrwx|0|0|7|0|'" + w.path("bin/sh") + "' -> 'busybox'"},
		{"stat -c %A|%s|%Y " + w.path("usr/bin/app"), "-rwxr-xr-x|7|0"},
		{"stat -c %A|%t|%T " + w.path("dev/console"), "crw-------|5|1"},
		{"stat -c %A " + w.path("tmp"), "drwxrwxrwt"},
		{"stat -c %A " + w.path("root"), "drwx------"},
		{"readlink " + w.path("bin/ls"), "busybox"},
		{"cat " + w.path("opt/data/sub/b.txt"), "beta"},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("usr/bin/app"), "mappings host:" + w.host},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("opt/data/sub"), "mappings host:" + filepath.Join(w.hostDir, "sub")},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("bin/busybox"), "busybox"},
		{"getfattr --absolute-names --only-values -n user.fledge.layer " + w.path("etc"), "skeleton"},
	} {
		args := strings.Fields(c.args)
		if got := strings.TrimSpace(run(t, args[0], args[1:]...)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.args, got, c.want)
		}
	}
	if got := run(t, "ls", "-a", w.path("bin")); got != ".\n..\nbusybox\nls\nsh\n" {
		t.Errorf("ls -a bin: %q", got)
	}
	find := run(t, "find", w.mnt, "-printf", "%P %y %m\n")
	for _, want := range []string{"bin/busybox f 755", "bin/sh l 777", "dev/null c 666", "opt/data/sub/b.txt f 644", "usr/bin/app f 755"} {
		if !strings.Contains(find, want+"\n") {
			t.Errorf("find lacks %q:\n%s", want, find)
		}
	}
	if du := strings.Fields(run(t, "du", "-sb", w.path("opt/data")))[0]; du == "0" {
		t.Errorf("du -sb over a folder with files says 0")
	}
	must(t, os.WriteFile(w.path("etc/edited"), []byte("x"), 0o644))
	if got := strings.TrimSpace(run(t, "getfattr", "--absolute-names", "--only-values", "-n", "user.fledge.layer", w.path("etc/edited"))); got != "edits host:"+filepath.Join(w.edits.Dir(), "etc", "edited") {
		t.Errorf("provenance of an edit: %q", got)
	}
}

// A mapped host file that changes shows its new content and size through
// the mount within a second; a file added to a mapped folder appears.
func TestMappingsAreLive(t *testing.T) {
	for _, o := range []Options{{}, {NoPassthrough: true}} {
		t.Run(map[bool]string{false: "passthrough", true: "no-passthrough"}[o.NoPassthrough], func(t *testing.T) {
			w := setupWorkspace(t)
			w.opts = o
			w.mount(t)
			if got, _ := os.ReadFile(w.path("usr/bin/app")); string(got) != "app v1\n" {
				t.Fatalf("before: %q", got)
			}
			must(t, os.WriteFile(w.host, []byte("app version 2, longer\n"), 0o755))
			must(t, os.WriteFile(filepath.Join(w.hostDir, "new.txt"), []byte("n"), 0o644))
			deadline := time.Now().Add(time.Second)
			for {
				got, _ := os.ReadFile(w.path("usr/bin/app"))
				fi, _ := os.Stat(w.path("usr/bin/app"))
				_, nerr := os.Stat(w.path("opt/data/new.txt"))
				if string(got) == "app version 2, longer\n" && fi != nil && fi.Size() == 22 && nerr == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 1s the mount shows %q (size %v, new file: %v)", got, fi.Size(), nerr)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
