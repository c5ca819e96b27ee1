package rootfs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
)

// contextKind says how a named build context reaches BuildKit.
type contextKind int

const (
	passThrough contextKind = iota // a value BuildKit resolves itself
	localDir                       // a host directory, sent through the session
	ociLayout                      // a local OCI layout, served as a content store
)

type namedContext struct {
	kind   contextKind
	value  string // passThrough: the value as given
	dir    string // localDir, ociLayout: absolute host directory
	digest string // ociLayout: manifest digest
}

const ociScheme = "oci-layout://"

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func parseNamedContexts(m map[string]string) (map[string]namedContext, error) {
	out := map[string]namedContext{}
	for name, v := range m {
		if name == "" || strings.ContainsAny(name, "= \t\n") {
			return nil, fmt.Errorf("rootfs: build context name %q: expected a stage or image name", name)
		}
		nc, err := parseNamedContext(v)
		if err != nil {
			return nil, fmt.Errorf("rootfs: build context %s=%s: %w", name, v, err)
		}
		out[name] = nc
	}
	return out, nil
}

func parseNamedContext(v string) (namedContext, error) {
	if rest, ok := strings.CutPrefix(v, ociScheme); ok {
		return parseOCILayout(rest)
	}
	if strings.Contains(v, "://") {
		return namedContext{kind: passThrough, value: v}, nil
	}
	dir, err := filepath.Abs(v)
	if err != nil {
		return namedContext{}, err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return namedContext{}, fmt.Errorf("%s is not a directory; expected a host directory, %sDIR@sha256:…, or a URL such as docker-image://alpine:3.20", dir, ociScheme)
	}
	return namedContext{kind: localDir, dir: dir}, nil
}

// parseOCILayout reads "DIR@sha256:…" or "DIR" (a layout holding exactly
// one manifest), the way buildx names a local OCI layout.
func parseOCILayout(rest string) (namedContext, error) {
	dir, dgst := rest, ""
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		dir, dgst = rest[:i], rest[i+1:]
		if !digestRE.MatchString(dgst) {
			return namedContext{}, fmt.Errorf("digest %q: expected sha256: and 64 lowercase hex digits", dgst)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return namedContext{}, err
	}
	if _, err := os.Stat(filepath.Join(abs, "index.json")); err != nil {
		return namedContext{}, fmt.Errorf("%s is not an OCI layout (no index.json); expected a directory written by an OCI image tool", abs)
	}
	if dgst == "" {
		if dgst, err = soleManifest(abs); err != nil {
			return namedContext{}, err
		}
	}
	return namedContext{kind: ociLayout, dir: abs, digest: dgst}, nil
}

func soleManifest(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", err
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return "", fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(idx.Manifests) != 1 {
		return "", fmt.Errorf("%s holds %d manifests; name one as %s%s@sha256:…", dir, len(idx.Manifests), ociScheme, dir)
	}
	return idx.Manifests[0].Digest, nil
}

// sortedNames gives a stable order, so session ids and hashes do not depend
// on map iteration.
func sortedNames(m map[string]namedContext) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// contextAttrs returns the frontend attributes for the named contexts, and
// the directories and OCI stores the session must serve for them. Session
// names are generated: user names may hold characters BuildKit's store ids
// do not allow.
func contextAttrs(named map[string]namedContext) (map[string]string, map[string]string, map[string]content.Store, error) {
	attrs := map[string]string{}
	dirs := map[string]string{}
	stores := map[string]content.Store{}
	for i, name := range sortedNames(named) {
		nc := named[name]
		id := fmt.Sprintf("fledge-context-%d", i)
		switch nc.kind {
		case passThrough:
			attrs["context:"+name] = nc.value
		case localDir:
			dirs[id] = nc.dir
			attrs["context:"+name] = "local:" + id
		case ociLayout:
			st, err := local.NewStore(nc.dir)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("rootfs: build context %s: %w", name, err)
			}
			stores[id] = st
			attrs["context:"+name] = ociScheme + id + "@" + nc.digest
		}
	}
	return attrs, dirs, stores, nil
}
