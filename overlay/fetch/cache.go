// Package fetch is fledge's download cache: inputs that cost a network trip
// (the BusyBox binary, the Kestrel agent) are stored content-addressed, so a
// blob enters the cache only once its sha256 is known and checked, and a
// build with --offline can run from the cache alone.
//
// Layout below Cache.Dir:
//
//	blobs/sha256/<hex>  verified content, read-only
//	refs/<hex of key>   for downloads without a pinned sha256: key → blob
//	tmp/                downloads in progress
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// Cache fetches URLs into a content-addressed directory.
type Cache struct {
	// Dir is the cache root, normally DefaultDir().
	Dir string
	// Offline forbids network access: only what the cache holds is used.
	Offline bool
	// Client makes the HTTP requests; nil means http.DefaultClient.
	Client *http.Client
	// Progress receives a human-readable line now and then during long
	// downloads; nil keeps fetching silent.
	Progress io.Writer
}

// DefaultDir is the cache directory fledge uses when told nothing else:
// $XDG_CACHE_HOME/fledge, or ~/.cache/fledge.
func DefaultDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w; set XDG_CACHE_HOME or HOME", err)
	}
	return filepath.Join(base, "fledge"), nil
}

// Fetch returns the path of a cached copy of rawURL (http, https or file).
//
// With sha256hex, a blob already in the cache is used without any request,
// and a download enters the cache only when its hash matches. Without it,
// the download is stored by its computed hash and a ref records which blob
// the URL gave last, so an offline build can still find it; for a file://
// URL the ref also keeps the file's stat, and while that stat is unchanged
// (device, inode, size, mtime, ctime) the blob is used without reading the
// file again.
func (c *Cache) Fetch(ctx context.Context, rawURL, sha256hex string) (string, error) {
	if c.Dir == "" {
		return "", errNoDir
	}
	src, err := parseSource(rawURL)
	if err != nil {
		return "", err
	}
	want, err := normalizeHex(sha256hex)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if want != "" {
		if p, ok := c.blob(want); ok {
			return p, nil
		}
	}
	if want == "" && !src.remote() {
		if p, ok := c.lookupFile(rawURL, src.u.Path); ok {
			return p, nil
		}
	}
	if c.Offline && src.remote() {
		if want == "" {
			if p, ok := c.lookupRef(rawURL); ok {
				return p, nil
			}
		}
		return "", c.offlineMiss(rawURL)
	}
	p, file, err := c.download(ctx, src, want)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if want == "" {
		if err := c.writeRef(rawURL, filepath.Base(p), file); err != nil {
			return "", fmt.Errorf("fetch %s: %w", rawURL, err)
		}
	}
	return p, nil
}

// errNoDir keeps a zero Cache from writing blobs below the working directory.
var errNoDir = errors.New("fetch: the cache has no directory; set Cache.Dir (fetch.DefaultDir gives the usual one)")

// ErrNotCached is what an offline fetch of something the cache lacks wraps.
var ErrNotCached = errors.New("not in the cache")

func (c *Cache) offlineMiss(what string) error {
	return fmt.Errorf("offline and %s is %w %s; run once without --offline to fill it", what, ErrNotCached, c.Dir)
}

func (c *Cache) blobPath(hex string) string {
	return filepath.Join(c.Dir, "blobs", "sha256", hex)
}

// blob reports whether the cache holds the blob with the given hash.
func (c *Cache) blob(hex string) (string, bool) {
	p := c.blobPath(hex)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

func (c *Cache) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return http.DefaultClient
}

// source is a parsed URL the cache knows how to read.
type source struct {
	raw string
	u   *url.URL
}

func (s source) remote() bool { return s.u.Scheme != "file" }

func parseSource(raw string) (source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return source{}, fmt.Errorf("fetch %q: not a valid URL: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return source{}, fmt.Errorf("fetch %q: the URL has no host", raw)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return source{}, fmt.Errorf("fetch %q: file URLs must name a local path (file:///abs/path), not host %q", raw, u.Host)
		}
		if !filepath.IsAbs(u.Path) {
			return source{}, fmt.Errorf("fetch %q: file URLs need an absolute path (file:///abs/path)", raw)
		}
	default:
		return source{}, fmt.Errorf("fetch %q: unsupported scheme %q; use https://, http:// or file://", raw, u.Scheme)
	}
	return source{raw: raw, u: u}, nil
}
