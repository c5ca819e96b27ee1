package main

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `fledge mount` of a 100 MB .cpio.gz (made by GNU cpio and gzip from
// incompressible files): time until the root lists, and the mount
// process's peak resident memory while a reader walks and reads every
// file. Targets: root within 2 s, RSS under 64 MB.
func BenchmarkMountArtifact100MB(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("mounting needs root (/dev/fuse)")
	}
	art := bigArtifact(b)
	fi, _ := os.Stat(art)
	b.Logf("artifact: %.1f MB", float64(fi.Size())/1e6)
	var toRoot time.Duration
	var peak int
	for b.Loop() {
		mnt := filepath.Join(b.TempDir(), "mnt")
		os.Mkdir(mnt, 0o755)
		start := time.Now()
		cmd := exec.Command(fledgeBin, "mount", art, mnt)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+b.TempDir()) // cold: decompress every time
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() && !strings.Contains(sc.Text(), "mounted at") {
		}
		if ents, err := os.ReadDir(mnt); err != nil || len(ents) == 0 {
			b.Fatalf("root of the mounted artifact: %v (%d entries)", err, len(ents))
		}
		toRoot = time.Since(start)
		n := readAll(b, mnt)
		peak = peakRSS(b, cmd.Process.Pid)
		if err := syscall.Unmount(mnt, 0); err != nil {
			b.Fatalf("unmount: %v", err)
		}
		cmd.Wait()
		b.Logf("root after %v; read %d MB; peak RSS %d MB", toRoot.Round(time.Millisecond), n>>20, peak>>20)
	}
	b.ReportMetric(toRoot.Seconds(), "s-to-root")
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-RSS")
}

// bigArtifact packs 400 random 256 KiB files with GNU cpio and gzip.
func bigArtifact(b *testing.B) string {
	tree := filepath.Join(b.TempDir(), "tree")
	for d := range 20 {
		dir := filepath.Join(tree, "data", fmt.Sprintf("d%02d", d))
		os.MkdirAll(dir, 0o755)
		for f := range 20 {
			buf := make([]byte, 256<<10)
			rand.Read(buf)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", f)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	art := filepath.Join(b.TempDir(), "big.cpio.gz")
	pack := exec.Command("sh", "-c", `find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1n > "$1"`, "sh", art)
	pack.Dir = tree
	if out, err := pack.CombinedOutput(); err != nil {
		b.Fatalf("packing with GNU cpio: %v: %s", err, out)
	}
	return art
}

func readAll(b *testing.B, root string) int64 {
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, f)
		f.Close()
		total += n
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// peakRSS reads VmHWM (the resident high-water mark) of pid, in bytes.
func peakRSS(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
