package rootfs

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCache(t *testing.T) {
	from, err := ParseCacheFrom("--cache-from", []string{"type=registry,ref=127.0.0.1:5000/c,registry.insecure=true", "type=local,src=dir"}, filepath.Abs)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("dir")
	if from[0].Type != "registry" || from[0].Attrs["ref"] != "127.0.0.1:5000/c" || from[0].Attrs["registry.insecure"] != "true" || from[1].Attrs["src"] != abs {
		t.Errorf("parsed %+v", from)
	}
	to, err := ParseCacheTo("--cache-to", []string{"type=inline"}, filepath.Abs)
	if err != nil || to[0].Type != "inline" || to[0].Attrs["mode"] != "min" {
		t.Errorf("type=inline parsed as %+v, %v; want BuildKit's default mode=min", to, err)
	}
	for spec, want := range map[string]string{
		"127.0.0.1:5000/c":      `--cache-to "127.0.0.1:5000/c": expected BuildKit's type=NAME,KEY=VALUE,… such as type=registry,ref=127.0.0.1:5000/c`,
		"":                      "such as type=registry,ref=HOST/REPO:TAG",
		"type=local":            `--cache-to "type=local": type=local needs dest=DIR`,
		`type=registry,"ref=x`:  `--cache-to "type=registry,\"ref=x": `,
		"type=registry,ref":     "invalid value ref",
		"type=local,dest=/x,,y": "invalid value",
	} {
		if _, err := ParseCacheTo("--cache-to", []string{spec}, filepath.Abs); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v; want one containing %q", spec, err, want)
		}
	}
}

func TestEmbeddedCacheTypes(t *testing.T) {
	to, err := ParseCacheTo("--cache-to", []string{"type=s3,bucket=b,region=r"}, filepath.Abs)
	if err != nil {
		t.Fatal(err)
	}
	err = checkEmbeddedCache(Options{CacheTo: to})
	if err == nil || !strings.Contains(err.Error(), "build cache type=s3: the embedded BuildKit has registry, local, inline; for s3, point --buildkit-addr") {
		t.Errorf("type=s3 in the embedded BuildKit: %v", err)
	}
	ok, _ := ParseCacheTo("--cache-to", []string{"type=registry,ref=r/c", "type=inline"}, filepath.Abs)
	if err := checkEmbeddedCache(Options{CacheTo: ok}); err != nil {
		t.Error(err)
	}
}
