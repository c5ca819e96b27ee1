package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
)

// greetingRecipe is examples/default with a host text file, etc/greeting,
// mapped to /etc/greeting: a relative argument that names it must be read
// as the image's /etc/greeting, not as a recipe.
func greetingRecipe(t *testing.T) string {
	t.Helper()
	dir := copyExample(t, "default")
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "greeting"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fledge.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\"./etc/greeting\" = \"/etc/greeting\"\n"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// An argument is a recipe or artifact by its content; anything else is a
// path in the image, relative ones from the root.
func TestLsTellsTargetsFromImagePathsByContent(t *testing.T) {
	dir := greetingRecipe(t)
	for _, args := range [][]string{{"ls", "etc/greeting"}, {"ls", "/etc/greeting"}, {"ls", "fledge.toml", "etc/greeting"}} {
		if r := mustFledge(t, dir, nil, args...); r.stdout != "/etc/greeting\n" {
			t.Errorf("fledge %v printed %q, want the image's /etc/greeting", args, r.stdout)
		}
	}
	r := mustFledge(t, dir, nil, "why", "etc/greeting")
	if !strings.Contains(r.stdout, "provided by layer mappings") {
		t.Errorf("why etc/greeting:\n%s", r.stdout)
	}
	// A recipe under another name is still told by its content.
	text, err := os.ReadFile(filepath.Join(dir, "fledge.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "recipe"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := mustFledge(t, dir, nil, "ls", "recipe", "etc"); r.stdout != "/etc\n/etc/greeting\n" {
		t.Errorf("ls recipe etc printed %q, want the recipe's /etc", r.stdout)
	}
	// A host text file named as the target of check is neither.
	if r := fledge(t, dir, nil, "check", "etc/greeting"); r.code != 1 || !strings.Contains(r.stderr, "etc/greeting is neither a recipe") {
		t.Errorf("check etc/greeting: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A folder holding fledge.toml stands for that recipe in every command
// that takes one, as an argument or as -c.
func TestRecipeFolderArguments(t *testing.T) {
	dir := greetingRecipe(t)
	parent, name := filepath.Dir(dir), filepath.Base(dir)
	art := filepath.Join(t.TempDir(), "a.cpio.gz")
	for _, args := range [][]string{
		{"ls", name, "/etc/greeting"},
		{"ls", "-c", name, "/etc/greeting"},
		{"why", name, "/etc/greeting"},
		{"check", name},
		{"pack", "-c", name, "-o", art},
		{"diff", "-c", name},
		{"diff", name, art},
	} {
		if r := fledge(t, parent, nil, args...); r.code != 0 {
			t.Errorf("fledge %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := mustFledge(t, parent, nil, "ls", name); !strings.Contains(r.stdout, "\n/etc/greeting\n") {
		t.Errorf("ls %s lacks /etc/greeting:\n%s", name, r.stdout)
	}
}

// A missing recipe is named with its absolute path; only the default one
// gets the hint to pass one with -c.
func TestMissingRecipeMessages(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"ls", "-c", "nope.toml"}, {"check", "nope.toml"}, {"pack", "-c", "nope.toml", "-o", "x.cpio.gz"}} {
		r := fledge(t, dir, nil, args...)
		want := "recipe nope.toml not found: " + filepath.Join(dir, "nope.toml") + " does not exist\n"
		if r.code != 1 || !strings.HasSuffix(r.stderr, want) {
			t.Errorf("fledge %v: exit %d, stderr %q; want it to end in %q", args, r.code, r.stderr, want)
		}
	}
	r := fledge(t, dir, nil, "ls")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(dir, "fledge.toml")+" does not exist; name a recipe with -c FILE") {
		t.Errorf("ls without a recipe: exit %d, stderr %q", r.code, r.stderr)
	}
}

// ls takes several paths and lists each subtree in turn.
func TestLsSeveralPaths(t *testing.T) {
	dir := greetingRecipe(t)
	r := mustFledge(t, dir, nil, "ls", "/etc", "usr/bin/hello", "/init")
	if r.stdout != "/etc\n/etc/greeting\n/usr/bin/hello\n/init\n" {
		t.Fatalf("ls /etc usr/bin/hello /init printed:\n%s", r.stdout)
	}
	if r := fledge(t, dir, nil, "ls", "/etc", "/nope"); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "/nope: not in the image") {
		t.Errorf("ls with a missing path: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// ls -l shows each entry's mtime as GNU cpio -tv does (the oracle), and
// --json gives it in RFC 3339 and in seconds.
func TestLsShowsMtimesLikeCpio(t *testing.T) {
	needTool(t, "cpio", "cpio")
	now := time.Now()
	times := map[string]time.Time{
		"recent": now.Add(-26 * time.Hour).Truncate(time.Second),
		"old":    now.AddDate(-2, 0, 0).Truncate(time.Second),
		"epoch":  time.Unix(0, 0),
	}
	a := &newcArchive{}
	for _, name := range []string{"epoch", "old", "recent"} {
		a.add(newcRecord{name: name, mode: 0o100644, mtime: uint32(times[name].Unix()), data: name})
	}
	art := filepath.Join(t.TempDir(), "times.cpio")
	if err := os.WriteFile(art, a.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cpio := exec.Command("cpio", "-tv", "--quiet", "-F", art)
	out, err := cpio.Output()
	if err != nil {
		t.Fatalf("cpio -tv: %v", err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		want["/"+f[8]] = strings.Join(f[5:8], " ")
	}
	r := mustFledge(t, t.TempDir(), nil, "ls", "-l", art)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		got[f[6]] = strings.Join(f[3:6], " ")
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: ls -l shows %q, cpio -tv %q\nls -l:\n%s\ncpio -tv:\n%s", p, got[p], w, r.stdout, out)
		}
	}
	var rows []inspect.Row
	if err := json.Unmarshal([]byte(mustFledge(t, t.TempDir(), nil, "ls", art, "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if w, ok := times[strings.TrimPrefix(row.Path, "/")]; ok && (row.MTimeSec != w.Unix() || row.MTime != w.UTC().Format(time.RFC3339)) {
			t.Errorf("%s: --json mtime %q / %d, want %s", row.Path, row.MTime, row.MTimeSec, w.UTC().Format(time.RFC3339))
		}
	}
}
