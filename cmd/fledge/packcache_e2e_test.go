package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bigTreeRecipe writes a none-mode recipe without BusyBox whose mapped
// folder holds files of text, about mib MiB in all: large enough that a
// pack takes a while to compress.
func bigTreeRecipe(t *testing.T, files, mib int) string {
	t.Helper()
	dir := t.TempDir()
	recipe := "version = \"1\"\nstrategy = \"initramfs\"\n[init]\nnone = true\n[source]\nbusybox = false\n" +
		"[mappings]\n\"./init\" = \"/init\"\n\"./tree\" = \"/tree\"\n"
	if err := os.WriteFile(filepath.Join(dir, "fledge.toml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("the kernel unpacks each archive into rootfs and a piece of compressed data is reused when nothing in it changed since the last pack wrote it")
	rng := rand.New(rand.NewPCG(21, 4))
	per := mib << 20 / files
	var b bytes.Buffer
	for i := range files {
		sub := filepath.Join(dir, "tree", fmt.Sprintf("d%02d", i%40))
		if i < 40 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		b.Reset()
		for b.Len() < per {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(" \n"[rng.IntN(2)])
			fmt.Fprint(&b, rng.IntN(1000))
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d.txt", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func packCmd(dir, cache, out string) *exec.Cmd {
	cmd := exec.Command(fledgeBin, "pack", "-c", filepath.Join(dir, "fledge.toml"), "--cache-dir", cache, "-o", out)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir)
	return cmd
}

// TestPackCacheSharedByProcesses runs two packs at once on one cache, then
// kills a pack with SIGKILL while it fills a fresh cache and packs again
// from what it left: every artifact is the cold pack's bytes.
func TestPackCacheSharedByProcesses(t *testing.T) {
	dir := bigTreeRecipe(t, 3000, 40)
	out := t.TempDir()
	cold := filepath.Join(out, "cold.cpio.gz")
	mustFledge(t, dir, nil, "pack", "--cache-dir", t.TempDir(), "-o", cold)
	want := sha256File(t, cold)

	shared := t.TempDir()
	var cmds []*exec.Cmd
	for i := range 2 {
		cmd := packCmd(dir, shared, filepath.Join(out, fmt.Sprintf("at-once-%d.cpio.gz", i)))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pack %d of two at once: %v", i, err)
		}
		if got := sha256File(t, filepath.Join(out, fmt.Sprintf("at-once-%d.cpio.gz", i))); got != want {
			t.Errorf("pack %d of two at once: sha256 %s, the cold pack's is %s", i, got, want)
		}
	}

	killed := t.TempDir()
	cmd := packCmd(dir, killed, filepath.Join(out, "killed.cpio.gz"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(cachedPieces(t, killed)) < 3 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the pack to kill ended before SIGKILL reached it (%v): the tree is too small to kill a pack mid-way", err)
	}
	t.Logf("killed with %d pieces in the cache", len(cachedPieces(t, killed)))
	for i := range 2 {
		again := filepath.Join(out, fmt.Sprintf("again-%d.cpio.gz", i))
		mustFledge(t, dir, nil, "pack", "--cache-dir", killed, "-o", again)
		if got := sha256File(t, again); got != want {
			t.Errorf("pack %d after a killed one: sha256 %s, the cold pack's is %s", i+1, got, want)
		}
	}
}

// cachedPieces lists the piece files below a cache folder.
func cachedPieces(t *testing.T, cache string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cache, "pieces", "??", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestPackCacheNotWritable packs as nobody with a cache that root made
// (as `sudo fledge pack` leaves it): once filled by root, and once empty.
// The pack warns in one line naming the cache, uses the pieces it holds,
// and writes root's bytes.
func TestPackCacheNotWritable(t *testing.T) {
	dir := bigTreeRecipe(t, 50, 2)
	work := openTempDir(t)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	filled, empty := filepath.Join(work, "filled"), filepath.Join(work, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	asRoot := filepath.Join(work, "root.cpio.gz")
	mustFledge(t, dir, nil, "pack", "--cache-dir", filled, "-o", asRoot)
	home := nobodyHome(t)
	for _, cache := range []string{filled, empty} {
		out := filepath.Join(home, filepath.Base(cache)+".cpio.gz")
		cmd := packCmd(dir, cache, out)
		runAsNobody(cmd, home)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("pack as nobody with root's %s cache: %v\n%s", filepath.Base(cache), err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "warning") || !strings.Contains(lines[0], filepath.Join(cache, "pieces")) {
			t.Errorf("pack as nobody with root's %s cache: stderr %q, want one warning naming %s", filepath.Base(cache), stderr.String(), filepath.Join(cache, "pieces"))
		}
		if got, want := sha256File(t, out), sha256File(t, asRoot); got != want {
			t.Errorf("pack as nobody with root's %s cache: sha256 %s, root's is %s", filepath.Base(cache), got, want)
		}
	}
}
