package fetch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

var kestrelBin = []byte("#!/bin/sh\necho kestrel stand-in\n")

// fakeGitHub serves the parts of the releases API fledge uses: one release
// per tag below, "latest" being v1.0.0, and the asset downloads.
func fakeGitHub(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var apiHits atomic.Int64
	releases := map[string]func(base string) any{
		"v1.0.0": func(base string) any {
			return release{TagName: "v1.0.0", Assets: []asset{
				{Name: "kestrel.sig", URL: base + "/dl/sig"},
				{Name: "kestrel", URL: base + "/dl/kestrel", Digest: "sha256:" + sum(kestrelBin)},
			}}
		},
		"nodigest": func(base string) any {
			return release{TagName: "nodigest", Assets: []asset{{Name: "kestrel", URL: base + "/dl/kestrel"}}}
		},
		"noasset": func(base string) any {
			return release{TagName: "noasset", Assets: []asset{{Name: "volant", URL: base + "/dl/x"}, {Name: "checksums.txt", URL: base + "/dl/y"}}}
		},
		"empty": func(base string) any { return release{TagName: "empty"} },
		"badsum": func(base string) any {
			return release{TagName: "badsum", Assets: []asset{{Name: "kestrel", URL: base + "/dl/kestrel", Digest: "sha256:" + strings.Repeat("0", 64)}}}
		},
		"fileurl": func(base string) any {
			return release{TagName: "fileurl", Assets: []asset{{Name: "kestrel", URL: "file:///etc/passwd"}}}
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/dl/kestrel", func(w http.ResponseWriter, r *http.Request) { w.Write(kestrelBin) })
	mux.HandleFunc("/repos/volantvm/volant/releases/", func(w http.ResponseWriter, r *http.Request) {
		apiHits.Add(1)
		if r.Header.Get("Accept") != "application/vnd.github+json" {
			t.Errorf("API request without the GitHub Accept header")
		}
		tag := strings.TrimPrefix(r.URL.Path, "/repos/volantvm/volant/releases/tags/")
		switch {
		case r.URL.Path == "/repos/volantvm/volant/releases/latest":
			tag = "v1.0.0"
		case tag == "limited":
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", "1700000000")
			http.Error(w, `{"message":"API rate limit exceeded"}`, http.StatusForbidden)
			return
		case tag == "secondary":
			w.Header().Set("Retry-After", "60")
			http.Error(w, `{"message":"secondary rate limit"}`, http.StatusForbidden)
			return
		case tag == "garbage":
			w.Write([]byte("<html>not json"))
			return
		}
		mk, ok := releases[tag]
		if !ok {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(mk("http://" + r.Host))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv(GitHubAPIEnv, srv.URL)
	return srv, &apiHits
}

func TestKestrelRelease(t *testing.T) {
	for _, version := range []string{"latest", "", "v1.0.0", "nodigest"} {
		t.Run(version, func(t *testing.T) {
			fakeGitHub(t)
			c := &Cache{Dir: t.TempDir()}
			p, err := c.KestrelRelease(context.Background(), version)
			if err != nil {
				t.Fatal(err)
			}
			assertBlob(t, p, kestrelBin)
		})
	}
}

func TestKestrelReleaseFailures(t *testing.T) {
	cases := []struct {
		version string
		wants   []string
	}{
		{"v9.9.9", []string{"kestrel release v9.9.9", `no release tagged "v9.9.9" in volantvm/volant`, "404 Not Found", "agent.version"}},
		{"noasset", []string{`release noasset has no asset named "kestrel"; it has: volant, checksums.txt`}},
		{"empty", []string{`release empty has no assets; expected one named "kestrel"`}},
		{"badsum", []string{"sha256 mismatch", "expected " + strings.Repeat("0", 64), "got " + sum(kestrelBin)}},
		{"limited", []string{"rate limit", "403 Forbidden", "resets at 22:13 UTC", "GITHUB_TOKEN"}},
		{"secondary", []string{"rate limit", "retry after 60 s"}},
		{"garbage", []string{"the answer is not a release"}},
		{"fileurl", []string{`download URL "file:///etc/passwd"`, "expected an https URL"}},
	}
	for _, tc := range cases {
		t.Run(tc.version, func(t *testing.T) {
			fakeGitHub(t)
			dir := filepath.Join(t.TempDir(), "cache")
			_, err := (&Cache{Dir: dir}).KestrelRelease(context.Background(), tc.version)
			assertErr(t, err, tc.wants...)
			if l := listing(t, dir); !equal(l, []string{"(absent)"}) {
				t.Errorf("failed release fetch left %q", l)
			}
		})
	}
}

func TestKestrelReleaseNoPublishedRelease(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	t.Setenv(GitHubAPIEnv, srv.URL)
	_, err := (&Cache{Dir: t.TempDir()}).KestrelRelease(context.Background(), "latest")
	assertErr(t, err, "volantvm/volant has no published release", srv.URL+"/repos/volantvm/volant/releases/latest")
}

func TestKestrelReleaseOffline(t *testing.T) {
	_, apiHits := fakeGitHub(t)
	dir := t.TempDir()
	off := &Cache{Dir: dir, Offline: true}
	_, err := off.KestrelRelease(context.Background(), "latest")
	assertErr(t, err, "offline and ", "/releases/latest is not in the cache "+dir, "run once without --offline")

	for _, v := range []string{"latest", "nodigest"} {
		p, err := (&Cache{Dir: dir}).KestrelRelease(context.Background(), v)
		if err != nil {
			t.Fatal(err)
		}
		hits := apiHits.Load()
		again, err := off.KestrelRelease(context.Background(), v)
		if err != nil || again != p {
			t.Fatalf("offline %s = %q, %v; want %q", v, again, err, p)
		}
		if n := apiHits.Load() - hits; n != 0 {
			t.Errorf("offline %s asked the API %d times", v, n)
		}
	}
	hits := apiHits.Load()
	if _, err := (&Cache{Dir: dir}).KestrelRelease(context.Background(), "nodigest"); err != nil {
		t.Fatal(err)
	}
	if n := apiHits.Load() - hits; n != 0 {
		t.Errorf("a tag already fetched asked the API %d times; tags do not move", n)
	}
	if _, err := (&Cache{Dir: dir}).KestrelRelease(context.Background(), "latest"); err != nil {
		t.Fatal(err)
	}
	if n := apiHits.Load() - hits; n != 1 {
		t.Errorf("latest online asked the API %d times, want 1: it moves", n)
	}
}

func TestKestrelHTTP(t *testing.T) {
	srv, _ := fakeGitHub(t)
	url := srv.URL + "/dl/kestrel"
	for _, checksum := range []string{"", "sha256:" + sum(kestrelBin), sum(kestrelBin)} {
		p, err := (&Cache{Dir: t.TempDir()}).KestrelHTTP(context.Background(), url, checksum)
		if err != nil {
			t.Fatalf("checksum %q: %v", checksum, err)
		}
		assertBlob(t, p, kestrelBin)
	}
	dir := filepath.Join(t.TempDir(), "cache")
	c := &Cache{Dir: dir}
	_, err := c.KestrelHTTP(context.Background(), url, "md5:abcd")
	assertErr(t, err, "agent.checksum", "md5")
	_, err = c.KestrelHTTP(context.Background(), url, "sha256:"+strings.Repeat("1", 64))
	assertErr(t, err, "kestrel agent", "sha256 mismatch")
	_, err = c.KestrelHTTP(context.Background(), srv.URL+"/dl/none", "")
	assertErr(t, err, "kestrel agent", srv.URL+"/dl/none", "404 Not Found")
	if l := listing(t, dir); !equal(l, []string{"(absent)"}) {
		t.Errorf("failed agent fetches left %q", l)
	}
}
