package fusefs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

// benchMount mounts a stack of the skeleton and one mapping of host at
// guest, with the edits layer on top as a recipe has it.
func benchMount(b *testing.B, host, guest string, o Options) string {
	b.Helper()
	requireRoot(b)
	dir := b.TempDir()
	mnt := filepath.Join(dir, "mnt")
	must(b, os.Mkdir(mnt, 0o755))
	st := &overlay.Stack{Layers: []overlay.Layer{
		overlay.Skeleton(),
		overlay.Mappings("", []overlay.Mapping{{Host: host, Guest: guest}}),
	}}
	srv, err := Mount(mnt, New(st, edits.Open(edits.Dir(dir))), o)
	must(b, err)
	b.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			b.Errorf("unmount: %v", err)
			_ = Unmount(mnt, true)
		}
	})
	return mnt
}

// Sequential read of a 512 MiB mapped file: direct, through the mount with
// passthrough, and through the server. Target: mount >= 0.8x direct.
func BenchmarkMappedRead512MiB(b *testing.B) {
	const size = 512 << 20
	host := filepath.Join(b.TempDir(), "big")
	f, err := os.Create(host)
	must(b, err)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for range size / len(chunk) {
		_, err := f.Write(chunk)
		must(b, err)
	}
	must(b, f.Close())
	read := func(b *testing.B, p string) {
		b.SetBytes(size)
		buf := make([]byte, 1<<20)
		for b.Loop() {
			f, err := os.Open(p)
			must(b, err)
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { read(b, host) })
	b.Run("mount-passthrough", func(b *testing.B) {
		read(b, filepath.Join(benchMount(b, host, "/big", Options{}), "big"))
	})
	b.Run("mount-no-passthrough", func(b *testing.B) {
		read(b, filepath.Join(benchMount(b, host, "/big", Options{NoPassthrough: true}), "big"))
	})
}

// find and ls -lR over a mapped folder of 20,000 files, on the host and
// through the mount. Target: mount <= 3x host.
//
// Warm runs repeat on the same mount, as a user listing a workspace again
// does; cold runs drop the kernel's dentry and inode caches first
// (vm.drop_caches=2, on the host too), so every entry is looked up anew.
// mount-poll is a mount with Options.Poll, whose host-backed entries the
// kernel may cache for 200 ms only.
func BenchmarkMappedTree20000(b *testing.B) {
	host := mappedTree(b)
	mnt := filepath.Join(benchMount(b, host, "/data", Options{}), "data")
	polled := filepath.Join(benchMount(b, host, "/data", Options{Poll: true}), "data")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	must(b, err)
	defer null.Close()
	for _, c := range []struct {
		name string
		cold bool
		args []string
	}{
		{"find", false, []string{"find"}},
		{"ls-lR", false, []string{"ls", "-lR"}},
		{"find-cold", true, []string{"find"}},
		{"ls-lR-cold", true, []string{"ls", "-lR"}},
	} {
		for _, where := range []struct{ name, dir string }{{"host", host}, {"mount", mnt}, {"mount-poll", polled}} {
			b.Run(c.name+"/"+where.name, func(b *testing.B) {
				// Straight to /dev/null: collecting the output in this
				// process would take CPU from the server under test.
				list := func() {
					cmd := exec.Command(c.args[0], append(c.args[1:], where.dir)...)
					cmd.Stdout = null
					if err := cmd.Run(); err != nil {
						b.Fatalf("%v: %v", c.args, err)
					}
				}
				if out, err := exec.Command(c.args[0], append(c.args[1:], where.dir)...).Output(); err != nil || bytes.Count(out, []byte("\n")) < 20000 {
					b.Fatalf("%v lists %d lines: %v", c.args, bytes.Count(out, []byte("\n")), err)
				}
				for b.Loop() {
					if c.cold {
						b.StopTimer()
						must(b, os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0))
						// The kernel sends FORGET for every dropped inode;
						// let the server finish those first.
						time.Sleep(300 * time.Millisecond)
						b.StartTimer()
					}
					list()
				}
			})
		}
	}
}

// mappedTree makes a host folder of 100 folders of 200 one-byte files.
func mappedTree(b *testing.B) string {
	host := filepath.Join(b.TempDir(), "tree")
	for d := range 100 {
		sub := filepath.Join(host, fmt.Sprintf("d%03d", d))
		must(b, os.MkdirAll(sub, 0o755))
		for f := range 200 {
			must(b, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), []byte("x"), 0o644))
		}
	}
	return host
}

// Creating small files through the mount while 20,000 mapped files sit
// below the edits, against creating them on the host: a change must cost
// what the edits hold, not a new merge of every mapped file.
func BenchmarkCreateBesideMappedTree20000(b *testing.B) {
	host := mappedTree(b)
	mnt := benchMount(b, host, "/data", Options{})
	for _, where := range []struct{ name, dir string }{{"host", b.TempDir()}, {"mount", mnt}} {
		b.Run(where.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				must(b, os.WriteFile(filepath.Join(where.dir, fmt.Sprintf("new%d", i)), []byte("edit"), 0o644))
			}
		})
	}
}

// Creating one small file through the mount after 0, 2,000 and 20,000
// earlier edits (made through the mount, in 100 folders), and on the host.
// A change costs what it changes, so the 20,000 case should stay within
// 1.5x of the 0 case; the benchmark reports that ratio (x-20000/0), it
// does not check it. Each iteration creates one file in each place in turn, so
// the load of a shared machine falls on all cases alike; the metrics are
// the mean time per file in each place, and the ratios that matter.
func BenchmarkCreateAfterEdits(b *testing.B) {
	counts := []int{0, 2000, 20000}
	dirs := []string{b.TempDir()}
	for _, n := range counts {
		mnt := benchMount(b, mappedTree(b), "/data", Options{})
		start := time.Now()
		for i := range n {
			dir := filepath.Join(mnt, "earlier", fmt.Sprintf("d%03d", i%100))
			if i < 100 {
				must(b, os.MkdirAll(dir, 0o755))
			}
			must(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte("edit"), 0o644))
		}
		b.Logf("%d earlier edits made in %v", n, time.Since(start).Round(time.Millisecond))
		dir := filepath.Join(mnt, "new")
		must(b, os.Mkdir(dir, 0o755))
		dirs = append(dirs, dir)
	}
	spent := make([]time.Duration, len(dirs))
	i := 0
	for b.Loop() {
		i++
		for k, dir := range dirs {
			start := time.Now()
			must(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("new%d", i)), []byte("edit"), 0o644))
			spent[k] += time.Since(start)
		}
	}
	per := func(k int) float64 { return float64(spent[k].Microseconds()) / float64(i) }
	b.ReportMetric(per(0), "us/host")
	for k, n := range counts {
		b.ReportMetric(per(k+1), fmt.Sprintf("us/edits=%d", n))
	}
	b.ReportMetric(per(3)/per(1), "x-20000/0")
	b.ReportMetric(per(1)/per(0), "x-0/host")
}

// tar x of the Go source tree into the mount and on the host: the same
// work as bench/mount-tar.sh, in-process, so -cpuprofile sees the server.
func BenchmarkUntarGoTree(b *testing.B) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	src := filepath.Join(string(bytes.TrimSpace(goroot)), "src")
	tarball := filepath.Join(b.TempDir(), "src.tar")
	if out, err := exec.Command("tar", "-C", filepath.Dir(src), "-cf", tarball, "src").CombinedOutput(); err != nil {
		b.Fatalf("tar c: %v: %s", err, out)
	}
	host := b.TempDir()
	mnt := benchMount(b, mappedTree(b), "/data", Options{})
	for _, where := range []struct{ name, dir string }{{"host", host}, {"mount", mnt}} {
		b.Run(where.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				dir := filepath.Join(where.dir, fmt.Sprintf("x%d", i))
				must(b, os.Mkdir(dir, 0o755))
				if out, err := exec.Command("tar", "-C", dir, "-xf", tarball).CombinedOutput(); err != nil {
					b.Fatalf("tar x: %v: %s", err, out)
				}
			}
		})
	}
}
