package rootfs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/client"
	buildctl "github.com/moby/buildkit/cmd/buildctl/build"
)

// Cache imports and exports share BuildKit's build cache between machines:
// a registry, a local folder, inline in an image, or whatever the daemon
// knows. They are written in BuildKit's own syntax, type=NAME,KEY=VALUE,…
// (buildctl --import-cache/--export-cache, docker buildx --cache-from/-to),
// and parsed by BuildKit's own parser so each means in fledge what it means
// there.

// ParseCacheFrom parses cache imports. The folder of a type=local src is
// made an absolute host path by folder, which may refuse it; what was wrong
// is named by what (a flag or a recipe key).
func ParseCacheFrom(what string, specs []string, folder func(string) (string, error)) ([]client.CacheOptionsEntry, error) {
	return parseCache(what, specs, folder, "src", buildctl.ParseImportCache)
}

// ParseCacheTo parses cache exports, as ParseCacheFrom does imports; a
// type=local export names its folder with dest.
func ParseCacheTo(what string, specs []string, folder func(string) (string, error)) ([]client.CacheOptionsEntry, error) {
	return parseCache(what, specs, folder, "dest", buildctl.ParseExportCache)
}

func parseCache(what string, specs []string, folder func(string) (string, error), localKey string, parse func([]string) ([]client.CacheOptionsEntry, error)) ([]client.CacheOptionsEntry, error) {
	var out []client.CacheOptionsEntry
	for _, s := range specs {
		if !strings.Contains(s, "type=") {
			// BuildKit reads a bare reference as a registry, with a
			// deprecation warning; fledge asks for the current form.
			return nil, fmt.Errorf("%s %q: expected BuildKit's type=NAME,KEY=VALUE,… such as type=registry,ref=%s or type=local,%s=DIR", what, s, refOr(s), localKey)
		}
		es, err := parse([]string{s})
		if err != nil {
			return nil, fmt.Errorf("%s %q: %v; expected BuildKit's type=NAME,KEY=VALUE,… such as type=registry,ref=HOST/REPO:TAG or type=local,%s=DIR", what, s, err, localKey)
		}
		e := es[0]
		if e.Type == "local" {
			p := e.Attrs[localKey]
			if p == "" {
				return nil, fmt.Errorf("%s %q: type=local needs %s=DIR, the cache folder", what, s, localKey)
			}
			abs, err := folder(p)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %s: %v", what, s, localKey, err)
			}
			e.Attrs[localKey] = abs
		}
		out = append(out, e)
	}
	return out, nil
}

// refOr is s, or an example reference when s is empty.
func refOr(s string) string {
	if s == "" {
		return "HOST/REPO:TAG"
	}
	return s
}

// embeddedCacheTypes are the cache backends the embedded BuildKit carries;
// the cloud ones (gha, s3, azblob) would bring their SDKs into every fledge,
// and a daemon at --buildkit-addr has them.
var embeddedCacheTypes = []string{"registry", "local", "inline"}

// checkEmbeddedCache refuses, before BuildKit starts, a cache type the
// embedded BuildKit does not carry.
func checkEmbeddedCache(o Options) error {
	for _, list := range [][]client.CacheOptionsEntry{o.CacheFrom, o.CacheTo} {
		for _, e := range list {
			if !slices.Contains(embeddedCacheTypes, e.Type) {
				return fmt.Errorf("build cache type=%s: the embedded BuildKit has %s; for %s, point --buildkit-addr (BUILDKIT_HOST) at a BuildKit daemon", e.Type, strings.Join(embeddedCacheTypes, ", "), e.Type)
			}
		}
	}
	return nil
}
