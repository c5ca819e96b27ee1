package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/packer"
)

// Names from an artifact are hostile: human output of ls, ls -l, why,
// diff and check escapes them, one line per entry; --json keeps them exact.
func TestHumanOutputEscapesHostileNames(t *testing.T) {
	const (
		esc          = "/d/evil\x1b[2J\x1b]0;owned\x07"
		newline      = "/d/two\nlines"
		escShown     = `/d/evil\x1b[2J\x1b]0;owned\x07`
		newlineShown = `/d/two\nlines`
	)
	dir := t.TempDir()
	artifact := func(name, content string) string {
		ents := []overlay.Entry{
			{Path: "/d", Type: overlay.Dir, Perm: 0o755},
			{Path: esc, Type: overlay.Regular, Perm: 0o644, Size: 1, Content: overlay.Bytes("x")},
			{Path: newline, Type: overlay.Regular, Perm: 0o644, Size: int64(len(content)), Content: overlay.Bytes(content)},
			{Path: "/d/link", Type: overlay.Symlink, Perm: 0o777, Linkname: "two\nlines"},
			{Path: "/d/dangling\nlink", Type: overlay.Symlink, Perm: 0o777, Linkname: "no\x1bwhere"},
		}
		v, err := (&overlay.Stack{Layers: []overlay.Layer{overlay.Skeleton(), &overlay.Static{LayerName: "test", List: ents}}}).View()
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		if _, err := packer.WriteFile(context.Background(), v, out, packer.Options{Compression: packer.None}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := artifact("a.cpio", "one"), artifact("b.cpio", "three")

	runs := map[string]result{
		"ls":    mustFledge(t, dir, nil, "ls", a),
		"ls -l": mustFledge(t, dir, nil, "ls", "-l", a),
		"why":   mustFledge(t, dir, nil, "why", a, esc),
		"diff":  fledge(t, dir, nil, "diff", a, b),
		"check": fledge(t, dir, nil, "check", a),
	}
	wants := map[string][]string{
		"ls":    {escShown, newlineShown, `/d/link -> two\nlines`},
		"ls -l": {escShown, newlineShown, `/d/link -> two\nlines`},
		"why":   {escShown},
		"diff":  {newlineShown},
		"check": {`/d/dangling\nlink`, `no\x1bwhere`},
	}
	for name, r := range runs {
		if strings.ContainsAny(r.stdout, "\x1b\x07") {
			t.Errorf("%s: raw control characters on stdout:\n%q", name, r.stdout)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(line, "lines") || strings.HasPrefix(line, "link") {
				t.Errorf("%s: a name was split over two lines:\n%s", name, r.stdout)
			}
		}
		for _, w := range wants[name] {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", name, w, r.stdout)
			}
		}
	}

	var rows []struct {
		Path string `json:"path"`
		Link string `json:"link_target"`
	}
	if err := json.Unmarshal([]byte(mustFledge(t, dir, nil, "ls", a, "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	exact := map[string]string{}
	for _, r := range rows {
		exact[r.Path] = r.Link
	}
	if _, ok := exact[esc]; !ok || exact["/d/link"] != "two\nlines" {
		t.Errorf("ls --json changed the names: %q", exact)
	}
}
