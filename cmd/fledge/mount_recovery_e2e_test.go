package main

import (
	"errors"
	"fmt"
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
