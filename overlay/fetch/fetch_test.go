package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var payload = bytes.Repeat([]byte("busybox payload\n"), 4096)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// server serves the fixtures every test fetches from and counts requests,
// so a test can prove that a cache hit made none.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t *testing.T) *server {
	s := &server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/busybox", func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other blob")) })
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		w.Write(payload[:100])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		half := len(payload) / 2
		w.Write(payload[:half])
		w.(http.Flusher).Flush()
		time.Sleep(progressEvery + 200*time.Millisecond)
		w.Write(payload[half:])
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// listing describes everything below dir (paths, types, modes, sizes,
// content hashes), so two listings are equal only if nothing changed.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + sum(b)
		}
		out = append(out, line)
		return nil
	})
	if os.IsNotExist(err) {
		return []string{"(absent)"}
	}
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func assertErr(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", wants)
	}
	t.Logf("error: %v", err)
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestFetchFailuresLeaveCacheUnchanged(t *testing.T) {
	srv := newServer(t)
	missing := filepath.Join(t.TempDir(), "nope", "busybox")
	wrong := strings.Repeat("ab", 32)
	cases := []struct {
		name    string
		url     string
		sha     string
		offline bool
		wants   []string
	}{
		{"http 404", srv.URL + "/absent", "", false, []string{srv.URL + "/absent", "404 Not Found"}},
		{"http 500", srv.URL + "/500", sum(payload), false, []string{srv.URL + "/500", "500 Internal Server Error"}},
		{"checksum mismatch", srv.URL + "/busybox", wrong, false, []string{"sha256 mismatch", "expected " + wrong, "got " + sum(payload)}},
		{"connection cut", srv.URL + "/cut", "", false, []string{srv.URL + "/cut", "download interrupted"}},
		{"offline miss with sha", srv.URL + "/busybox", sum(payload), true, []string{"offline and " + srv.URL + "/busybox is not in the cache", "run once without --offline"}},
		{"offline miss without sha", srv.URL + "/busybox", "", true, []string{"offline and " + srv.URL + "/busybox is not in the cache"}},
		{"missing file", "file://" + missing, "", false, []string{"file://" + missing, missing + " does not exist"}},
		{"file is a directory", "file://" + filepath.Dir(filepath.Dir(missing)), "", false, []string{"not a regular file"}},
		{"bad sha syntax", srv.URL + "/busybox", "sha256:1234", false, []string{"a sha256 is 64 hex digits"}},
		{"unsupported scheme", "ftp://example.com/busybox", "", false, []string{`unsupported scheme "ftp"`}},
		{"file URL with host", "file://host/busybox", "", false, []string{"local path"}},
		{"http URL without host", "http:///busybox", "", false, []string{"no host"}},
	}
	for _, tc := range cases {
		for _, populated := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/populated=%v", tc.name, populated), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "cache")
				if populated {
					c := &Cache{Dir: dir}
					if _, err := c.Fetch(context.Background(), srv.URL+"/other", ""); err != nil {
						t.Fatal(err)
					}
				}
				before := listing(t, dir)
				c := &Cache{Dir: dir, Offline: tc.offline}
				_, err := c.Fetch(context.Background(), tc.url, tc.sha)
				assertErr(t, err, tc.wants...)
				if after := listing(t, dir); !equal(before, after) {
					t.Errorf("cache changed by a failed fetch:\nbefore %q\nafter  %q", before, after)
				}
			})
		}
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestFetchWithChecksum(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	c := &Cache{Dir: dir}
	p, err := c.Fetch(context.Background(), srv.URL+"/busybox", strings.ToUpper(sum(payload)))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "blobs", "sha256", sum(payload)); p != want {
		t.Errorf("path %s, want %s", p, want)
	}
	assertBlob(t, p, payload)
	if _, err := os.Stat(filepath.Join(dir, "refs")); !os.IsNotExist(err) {
		t.Errorf("a pinned download wrote refs/ (stat: %v)", err)
	}
	hits := srv.hits.Load()
	for _, offline := range []bool{false, true} {
		c := &Cache{Dir: dir, Offline: offline}
		again, err := c.Fetch(context.Background(), srv.URL+"/busybox", sum(payload))
		if err != nil || again != p {
			t.Fatalf("offline=%v: second fetch = %q, %v; want %q", offline, again, err, p)
		}
	}
	if n := srv.hits.Load() - hits; n != 0 {
		t.Errorf("cache hits made %d requests, want 0", n)
	}
}

func assertBlob(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes, not the %d served", p, len(got), len(want))
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Errorf("%s has mode %v, want read-only 0444", p, fi.Mode().Perm())
	}
	if filepath.Base(p) != sum(got) {
		t.Errorf("%s is not named by its sha256 %s", p, sum(got))
	}
}

func TestFetchWithoutChecksumRecordsRef(t *testing.T) {
	srv := newServer(t)
	dir := t.TempDir()
	url := srv.URL + "/busybox"
	p, err := (&Cache{Dir: dir}).Fetch(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	assertBlob(t, p, payload)
	hits := srv.hits.Load()
	off := &Cache{Dir: dir, Offline: true}
	again, err := off.Fetch(context.Background(), url, "")
	if err != nil || again != p {
		t.Fatalf("offline fetch = %q, %v; want %q", again, err, p)
	}
	if n := srv.hits.Load() - hits; n != 0 {
		t.Errorf("offline fetch made %d requests", n)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err = off.Fetch(context.Background(), url, "")
	assertErr(t, err, "offline and "+url+" is not in the cache "+dir)
}

func TestFetchFileURL(t *testing.T) {
	src := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(src, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		sha     string
		offline bool
	}{{"pinned", sum(payload), false}, {"unpinned", "", false}, {"offline reads local files", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cache{Dir: t.TempDir(), Offline: tc.offline}
			p, err := c.Fetch(context.Background(), "file://"+src, tc.sha)
			if err != nil {
				t.Fatal(err)
			}
			assertBlob(t, p, payload)
		})
	}
}

// TestFetchFileURLByStat: an unpinned file:// URL whose file is unchanged
// since it was read (and was not written in the tick it was read) gives the
// blob without reading the file; the test plants other bytes in the blob to
// see that. A file edited to the same size with its mtime put back is read
// again: its ctime moved. A file read just after it was written is read
// again too (racy).
func TestFetchFileURLByStat(t *testing.T) {
	src := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(src, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	fetch := func() string {
		t.Helper()
		p, err := c.Fetch(context.Background(), "file://"+src, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	planted := bytes.ToUpper(payload)
	plant := func(p string) {
		t.Helper()
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, planted, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(p string, want []byte, what string) {
		t.Helper()
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %s holds %.20q (%v), want %.20q", what, p, got, err, want)
		}
	}
	plant(fetch())
	holds(fetch(), payload, "a file read in the tick it was written")
	time.Sleep(2100 * time.Millisecond) // the racy window
	p := fetch()                        // reads it, no longer racy
	holds(p, payload, "the first read out of the racy window")
	plant(p)
	holds(fetch(), planted, "an unchanged file")

	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.ReplaceAll(payload, []byte("busybox"), []byte("BUSYBOX"))
	if err := os.WriteFile(src, edited, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	assertBlob(t, fetch(), edited)
}

func TestFetchProgress(t *testing.T) {
	srv := newServer(t)
	var out bytes.Buffer
	c := &Cache{Dir: t.TempDir(), Progress: &out}
	if _, err := c.Fetch(context.Background(), srv.URL+"/slow", sum(payload)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "fetching "+srv.URL+"/slow: ") || !strings.Contains(lines[0], "of 64.0 KiB") ||
		lines[1] != "fetched "+srv.URL+"/slow: 64.0 KiB" {
		t.Errorf("progress output:\n%s", out.String())
	}
	out.Reset()
	if _, err := c.Fetch(context.Background(), srv.URL+"/busybox", ""); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("a quick download printed progress: %q", out.String())
	}
}

func TestFetchCancelled(t *testing.T) {
	srv := newServer(t)
	dir := filepath.Join(t.TempDir(), "cache")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Cache{Dir: dir}).Fetch(ctx, srv.URL+"/busybox", "")
	assertErr(t, err, "context canceled")
	if l := listing(t, dir); !equal(l, []string{"(absent)"}) {
		t.Errorf("cancelled fetch left %q", l)
	}
}

func TestParseChecksum(t *testing.T) {
	h := sum(payload)
	cases := []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"sha256:" + h, h, ""},
		{"SHA256:" + strings.ToUpper(h), h, ""},
		{h, h, ""},
		{"md5:" + h, "", `agent.checksum "md5:` + h + `": unsupported algorithm "md5"`},
		{"sha256:abc", "", "agent.checksum \"sha256:abc\": a sha256 is 64 hex digits, got 3 characters"},
		{"sha256:" + strings.Repeat("g", 64), "", "agent.checksum"},
	}
	for _, tc := range cases {
		got, err := ParseChecksum(tc.in)
		if tc.err != "" {
			assertErr(t, err, tc.err, "sha256:<64 hex digits>")
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseChecksum(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestZeroCacheRefuses(t *testing.T) {
	_, err := (&Cache{}).Fetch(context.Background(), "file:///bin/sh", "")
	assertErr(t, err, "the cache has no directory", "Cache.Dir")
	_, err = (&Cache{}).KestrelRelease(context.Background(), "latest")
	assertErr(t, err, "the cache has no directory")
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, err := DefaultDir(); err != nil || d != "/x/cache/fledge" {
		t.Errorf("DefaultDir with XDG_CACHE_HOME = %q, %v", d, err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, err := DefaultDir(); err != nil || d != "/home/u/.cache/fledge" {
		t.Errorf("DefaultDir from HOME = %q, %v", d, err)
	}
}

// A file URL naming a FIFO is refused like any special file: opening it
// must not wait for a writer that never comes.
func TestFetchFileURLOfFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := (&Cache{Dir: t.TempDir()}).Fetch(context.Background(), "file://"+fifo, "")
		got <- err
	}()
	select {
	case err := <-got:
		assertErr(t, err, fifo+" is a special file, not a regular file")
	case <-time.After(5 * time.Second):
		// Release the blocked open so the goroutine ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-got
		t.Fatal("fetching a FIFO waited for a writer")
	}
}
