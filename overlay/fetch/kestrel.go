package fetch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

const (
	kestrelRepo  = "volantvm/volant"
	kestrelAsset = "kestrel"
)

// KestrelRelease fetches the Kestrel agent from a GitHub release of
// volantvm/volant: version is a tag or "latest". The asset's digest, when
// GitHub publishes one, is verified. Offline, the release last fetched for
// this version is used.
func (c *Cache) KestrelRelease(ctx context.Context, version string) (string, error) {
	if c.Dir == "" {
		return "", errNoDir
	}
	if version == "" {
		version = "latest"
	}
	p, err := c.kestrelRelease(ctx, version)
	if err != nil {
		return "", fmt.Errorf("kestrel release %s: %w", version, err)
	}
	return p, nil
}

func (c *Cache) kestrelRelease(ctx context.Context, version string) (string, error) {
	api := releaseURL(kestrelRepo, version)
	key := api + "#" + kestrelAsset
	// A tag names one release for good, so once fetched it needs no API
	// call (unauthenticated callers get 60 an hour); "latest" moves, so it
	// is asked for whenever the network may be used.
	if c.Offline || version != "latest" {
		if p, ok := c.lookupRef(key); ok {
			return p, nil
		}
	}
	if c.Offline {
		return "", c.offlineMiss(api)
	}
	rel, err := c.getRelease(ctx, api)
	if errors.Is(err, errNotFound) {
		if version == "latest" {
			return "", fmt.Errorf("%s has no published release (%s answered 404 Not Found)", kestrelRepo, api)
		}
		return "", fmt.Errorf("no release tagged %q in %s (%s answered 404 Not Found); check agent.version", version, kestrelRepo, api)
	}
	if err != nil {
		return "", err
	}
	a, err := rel.find(kestrelAsset)
	if err != nil {
		return "", err
	}
	sha, err := a.sha256()
	if err != nil {
		return "", err
	}
	// The download URL comes from the network: only http(s) may follow,
	// never a file:// URL that would copy a host file into the image.
	if src, err := parseSource(a.URL); err != nil || !src.remote() {
		return "", fmt.Errorf("asset %s has download URL %q; expected an https URL", a.Name, a.URL)
	}
	p, err := c.Fetch(ctx, a.URL, sha)
	if err != nil {
		return "", err
	}
	if err := c.writeRef(key, filepath.Base(p), nil); err != nil {
		return "", err
	}
	return p, nil
}

// KestrelHTTP fetches the agent from a URL with an optional checksum, as
// given by the recipe's agent.url and agent.checksum ("sha256:<hex>" or
// bare hex).
func (c *Cache) KestrelHTTP(ctx context.Context, url, checksum string) (string, error) {
	sha, err := ParseChecksum(checksum)
	if err != nil {
		return "", err
	}
	p, err := c.Fetch(ctx, url, sha)
	if err != nil {
		return "", fmt.Errorf("kestrel agent: %w", err)
	}
	return p, nil
}
