package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A killed fledge leaves a stale mountpoint; the next mount recovers it,
// and an edit that was synced before the kill is still there.
func TestMountRecoversAfterKill9(t *testing.T) {
	dir := copyExample(t, "default")
	mnt := newMountpoint(t)
	m := startMount(t, dir, mnt)
	f, err := os.Create(filepath.Join(mnt, "etc", "synced"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("kept\n")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m.cmd.Process.Kill()
	m.cmd.Wait()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after kill -9 the mountpoint gives %v, want ENOTCONN (a stale mount)", err)
	}
	m2 := startMount(t, dir, mnt)
	got, err := os.ReadFile(filepath.Join(mnt, "etc", "synced"))
	if err != nil || string(got) != "kept\n" {
		t.Fatalf("synced edit after kill -9 and remount: %q, %v", got, err)
	}
	m2.umount(t)
}

// A busy unmount names the mountpoint and how to force it.
func TestUmountBusy(t *testing.T) {
	m := startMount(t, copyExample(t, "default"), newMountpoint(t))
	f, err := os.Open(filepath.Join(m.mnt, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	r := fledge(t, "/", nil, "umount", m.mnt)
	f.Close()
	if r.code == 0 || !strings.Contains(r.stderr, m.mnt) || !strings.Contains(r.stderr, "busy") || !strings.Contains(r.stderr, "--lazy") {
		t.Fatalf("umount of a busy mount: exit %d, stderr:\n%s\nwant a failure naming %s, 'busy' and --lazy", r.code, r.stderr, m.mnt)
	}
	m.umount(t)
}

// SIGTERM unmounts cleanly and the process exits 0.
func TestMountStopsOnSIGTERM(t *testing.T) {
	m := startMount(t, copyExample(t, "default"), newMountpoint(t))
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fledge mount after SIGTERM: %v\n%s", err, m.output())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("fledge mount still running 10s after SIGTERM")
	}
	var st, pst syscall.Stat_t
	syscall.Stat(m.mnt, &st)
	syscall.Stat(filepath.Dir(m.mnt), &pst)
	if st.Dev != pst.Dev {
		t.Fatalf("%s is still a mountpoint after SIGTERM", m.mnt)
	}
}

// Several processes writing different files at once lose nothing.
func TestMountConcurrentWriters(t *testing.T) {
	dir := copyExample(t, "default")
	m := startMount(t, dir, newMountpoint(t))
	const procs, files = 4, 100
	var wg sync.WaitGroup
	for w := range procs {
		wg.Go(func() {
			script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do printf 'writer %d file %%d\n' $i > "$1/tmp/w%d_$i"; i=$((i+1)); done`, files, w, w)
			if out, err := exec.Command("sh", "-c", script, "sh", m.mnt).CombinedOutput(); err != nil {
				t.Errorf("writer %d: %v: %s", w, err, out)
			}
		})
	}
	wg.Wait()
	m.umount(t)
	art := filepath.Join(t.TempDir(), "c.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	gnuCPIO(t, art, x, "-idm", "--quiet", "--no-absolute-filenames")
	for w := range procs {
		for i := range files {
			got, err := os.ReadFile(filepath.Join(x, "tmp", fmt.Sprintf("w%d_%d", w, i)))
			if want := fmt.Sprintf("writer %d file %d\n", w, i); err != nil || string(got) != want {
				t.Fatalf("packed w%d_%d: %q, %v; want %q", w, i, got, err, want)
			}
		}
	}
}

// A pack taken while a writer works through the mount sees one moment of
// the edits: files are written one after another, so every packed file
// but the newest is complete.
func TestPackWhileMountIsLive(t *testing.T) {
	dir := copyExample(t, "default")
	m := startMount(t, dir, newMountpoint(t))
	const n = 400
	writer := exec.Command("sh", "-c", fmt.Sprintf(`mkdir "$1/var/seq" && i=0; while [ $i -lt %d ]; do printf '%%0512d' $i > "$1/var/seq/$i"; i=$((i+1)); done`, n), "sh", m.mnt)
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- writer.Wait() }()
	packs := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			running = false
		default:
		}
		art := filepath.Join(t.TempDir(), fmt.Sprintf("live%d.cpio.gz", packs))
		mustFledge(t, dir, nil, "pack", "-o", art)
		checkSeq(t, art)
		packs++
	}
	t.Logf("%d packs taken while the writer ran", packs)
	m.umount(t)
}

func checkSeq(t *testing.T, art string) {
	t.Helper()
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	gnuCPIO(t, art, x, "-idm", "--quiet", "--no-absolute-filenames")
	ents, _ := os.ReadDir(filepath.Join(x, "var", "seq"))
	newest := -1
	for _, e := range ents {
		var i int
		fmt.Sscan(e.Name(), &i)
		newest = max(newest, i)
	}
	if len(ents) != newest+1 {
		t.Fatalf("%s: %d files in var/seq but the newest is %d: a file written earlier is missing", art, len(ents), newest)
	}
	for i := range newest + 1 {
		got, _ := os.ReadFile(filepath.Join(x, "var", "seq", fmt.Sprint(i)))
		want := fmt.Sprintf("%0512d", i)
		if string(got) != want && !(i == newest && len(got) == 0) {
			t.Fatalf("%s: var/seq/%d holds %d bytes %.20q..., want it complete", art, i, len(got), got)
		}
	}
}

// kill -9 of the mount in the middle of a tar x into it: the next mount
// recovers the stale mountpoint; every file tar had finished, and the test
// had synced through the mount, before the kill is intact (content, mode,
// owner); no temporary name of the edits shows; `fledge diff` lists the
// partial tree; and tar x run again completes it.
func TestMountRecoversFromKill9DuringTarX(t *testing.T) {
	needTool(t, "tar", "tar")
	src := bulkTree(t)
	tarball := filepath.Join(t.TempDir(), "bulk.tar")
	if out, err := exec.Command("tar", "-C", filepath.Dir(src), "-cf", tarball, filepath.Base(src)).CombinedOutput(); err != nil {
		t.Fatalf("tar c: %v: %s", err, out)
	}
	dir := copyExample(t, "default")
	mnt := newMountpoint(t)
	m := startMount(t, dir, mnt)
	into := filepath.Join(mnt, "opt")
	if err := os.Mkdir(into, 0o755); err != nil {
		t.Fatal(err)
	}

	// tar -v names a member as it starts on it, so every name before the
	// last one read is finished.
	tarx := exec.Command("stdbuf", "-oL", "tar", "-C", into, "-xvf", tarball)
	out, err := tarx.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tarx.Stderr = io.Discard
	if err := tarx.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var names []string
	for len(names) < 300 && sc.Scan() {
		names = append(names, strings.TrimSuffix(sc.Text(), "/"))
	}
	// tar waits while the finished files are synced and the mount is
	// killed: on a loaded machine the syncs take long enough for tar to
	// reach the end of the tree otherwise, and the kill would hit no tar x.
	if err := tarx.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	finished := names[:len(names)-1]
	for _, n := range finished {
		syncThrough(t, filepath.Join(into, n))
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	if err := tarx.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	if err := tarx.Wait(); err == nil {
		t.Fatal("tar x finished before the kill; the test needs a bigger tree")
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after kill -9 the mountpoint gives %v, want ENOTCONN (a stale mount)", err)
	}

	m2 := startMount(t, dir, mnt)
	for _, n := range finished {
		want := describeHost(t, filepath.Join(filepath.Dir(src), n))
		if got := describeHost(t, filepath.Join(into, n)); got != want && !strings.HasPrefix(want, "40") {
			t.Errorf("%s after kill -9 and remount: %s, want %s", n, got, want)
		}
	}
	err = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("%s: a name of the edits' own bookkeeping shows in the mount", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m2.umount(t)

	r := fledge(t, dir, nil, "diff")
	if r.code != 1 {
		t.Fatalf("diff after the kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, n := range finished {
		if !strings.Contains(r.stdout, "added    /opt/"+n+"  (") {
			t.Errorf("diff lacks the finished /opt/%s:\n%.2000s", n, r.stdout)
			break
		}
	}

	m3 := startMount(t, dir, mnt)
	if out, err := exec.Command("tar", "-C", into, "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("tar x again after the recovery: %v: %s", err, out)
	}
	if d := diffMaps(tree(t, src), tree(t, filepath.Join(into, filepath.Base(src)))); d != "" {
		t.Errorf("the tree tar x completed after the recovery differs (- source, + mount):\n%s", d)
	}
	m3.umount(t)
}

// bulkTree makes 80 folders of 50 files of 40 bytes to 50 KB, with modes
// and owners that vary, for tar to carry.
func bulkTree(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "bulk")
	for d := range 80 {
		sub := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 50 {
			p := filepath.Join(sub, fmt.Sprintf("f%02d", f))
			data := []byte(strings.Repeat(fmt.Sprintf("%s\n", p), 1+(d*50+f)%1200))
			if err := os.WriteFile(p, data, []fs.FileMode{0o644, 0o755, 0o600}[f%3]); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 1000+f%3, 1000+d%2); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// syncThrough fsyncs the file at p (a folder is left alone).
func syncThrough(t *testing.T, p string) {
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("opening %s to sync it: %v", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync %s: %v", p, err)
		}
	}
}
