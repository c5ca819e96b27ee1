package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// End-to-end tests of check's rules for images that pack but do not boot.

// replaceIn rewrites file with old replaced by new, failing when old is not
// there: a test whose edit did nothing would pass for the wrong reason.
func replaceIn(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(b), old, new)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantCheck runs check with args in dir and fails unless it exits with
// code and its output has every line of want.
func wantCheck(t *testing.T, dir string, code int, want []string, args ...string) {
	t.Helper()
	r := fledge(t, dir, nil, append([]string{"check"}, args...)...)
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("fledge check %s: stdout lacks %q", strings.Join(args, " "), w)
		}
	}
	if r.code != code || t.Failed() {
		t.Fatalf("fledge check %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
}

// The workload's entrypoint must be an executable in the image, whether the
// manifest is the recipe's manifest.toml, one given with -m, or the
// NAME.manifest.json a build wrote beside its artifact.
func TestCheckFollowsTheManifestEntrypoint(t *testing.T) {
	dir := copyExample(t, "default")
	art := buildExample(t, "default")
	built := strings.TrimSuffix(art, ".cpio.gz") + ".manifest.json"
	wantCheck(t, dir, 0, []string{"0 errors"}, art)

	replaceIn(t, filepath.Join(dir, "manifest.toml"), `"/usr/bin/hello"`, `"/usr/bin/nothere"`)
	missing := "error entrypoint-missing: /usr/bin/nothere: workload.entrypoint of "
	wantCheck(t, dir, 2, []string{missing + filepath.Join(dir, "manifest.toml") + " is /usr/bin/nothere, which is not in the image"})

	other := filepath.Join(t.TempDir(), "other.toml")
	if err := os.WriteFile(other, []byte("[workload]\nentrypoint = [\"/etc/passwd\", \"-v\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replaceIn(t, filepath.Join(dir, "fledge.toml"), "[mappings]\n", "[mappings]\n\"./passwd\" = \"/etc/passwd\"\n")
	wantCheck(t, dir, 2, []string{"error entrypoint-not-executable: /etc/passwd: workload.entrypoint of " + other + ": /etc/passwd has mode -rw-r--r--"}, "-m", other)

	replaceIn(t, built, `"/usr/bin/hello"`, `"/usr/bin/nothere"`)
	wantCheck(t, dir, 2, []string{missing + built + " is"}, art)
	moved := filepath.Join(t.TempDir(), "app.manifest.json")
	if err := os.Rename(built, moved); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, dir, 0, []string{"0 errors"}, art)
	wantCheck(t, dir, 2, []string{missing + moved + " is"}, art, "-m", moved)
}

// A script with Windows line endings asks the kernel for "/bin/sh\r": the
// boot fails with error -2 (ENOENT), so check must fail it too, and its fix
// must work as printed.
func TestCheckRefusesWindowsLineEndings(t *testing.T) {
	kernel := testKernel(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	sed := needTool(t, "sed", "sed")
	dir := noneRecipe(t, "echo crlf-test-ok\npoweroff -f\n", 0o755)
	init := filepath.Join(dir, "init")
	replaceIn(t, init, "\n", "\r\n")
	wantCheck(t, dir, 2, []string{
		"error shebang-crlf: /init: /init (from the host file " + init + `) has Windows line endings: its #! line names the interpreter "/bin/sh\r", which is not in the image`,
		`fix: convert the script to Unix line endings: sed -i 's/\r$//' FILE`,
	})
	if r := fledge(t, dir, nil, "check"); strings.Contains(r.stdout, "shebang-missing") {
		t.Errorf("the interpreter was reported missing as well:\n%s", r.stdout)
	}
	r := fledge(t, dir, nil, "boot", "--kernel", kernel, "--expect", "^crlf-test-ok$", "--timeout", "2m")
	if r.code != exitBootFailed || !strings.Contains(r.stdout, "Failed to execute /init (error -2)") {
		t.Fatalf("boot of the CRLF /init: exit %d (want %d) and no \"Failed to execute /init (error -2)\"\nstderr: %s\nconsole:\n%s", r.code, exitBootFailed, r.stderr, r.stdout)
	}
	if out, err := exec.Command(sed, "-i", `s/\r$//`, init).CombinedOutput(); err != nil {
		t.Fatalf("the printed fix: %v: %s", err, out)
	}
	wantCheck(t, dir, 0, []string{"0 errors"})
}

// A mapping onto "/usr/bin/" places the file in the folder, as COPY does:
// BusyBox's links there stay, and the image checks clean.
func TestMappingIntoAFolderKeepsItsPrograms(t *testing.T) {
	dir := copyExample(t, "default")
	replaceIn(t, filepath.Join(dir, "fledge.toml"), `"./hello" = "/usr/bin/hello"`, `"./hello" = "/usr/bin/"`)
	why := mustFledge(t, dir, nil, "why", "/usr/bin/hello")
	if !strings.Contains(why.stdout, "mappings") || !strings.Contains(why.stdout, filepath.Join(dir, "hello")) {
		t.Errorf("/usr/bin/hello does not come from the mapping:\n%s", why.stdout)
	}
	ls := mustFledge(t, dir, nil, "ls", "/usr/bin")
	for _, line := range []string{"/usr/bin/awk -> ../../bin/busybox", "/usr/bin/hello", "/usr/bin/wget -> ../../bin/busybox"} {
		if !strings.Contains(ls.stdout, "\n"+line+"\n") {
			t.Errorf("ls /usr/bin lacks the line %q:\n%s", line, ls.stdout)
		}
	}
	wantCheck(t, dir, 0, []string{"0 errors, 0 warnings"})
}

// A file mapped over a folder of programs replaces the folder: every
// program in it, and every BusyBox link that led there, is gone. check
// makes that one error naming the cause, not a shadowed warning.
func TestCheckRefusesAFileOverAFolderOfPrograms(t *testing.T) {
	for _, guest := range []string{"/usr/bin", "/bin"} {
		t.Run(guest, func(t *testing.T) {
			dir := copyExample(t, "default")
			replaceIn(t, filepath.Join(dir, "fledge.toml"), `"./hello" = "/usr/bin/hello"`, `"./hello" = "`+guest+`"`)
			want := "error shadowed-programs: " + guest + ": the file from layer mappings (" + filepath.Join(dir, "hello") + ") replaces the directory " + guest + " of layer skeleton, so "
			wantCheck(t, dir, 2, []string{want, " program(s) of the layers below no longer run: " + guest + "/"})
			r := fledge(t, dir, nil, "check")
			if strings.Contains(r.stdout, "warning shadowed: "+guest+":") || strings.Contains(r.stdout, "symlink-dangling") {
				t.Errorf("the hidden programs are reported as warnings too:\n%s", r.stdout)
			}
		})
	}
}
