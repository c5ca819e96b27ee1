package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// boot --json: exactly one object on stdout, the console elsewhere, the
// kernel found through $FLEDGE_KERNEL, the four phases measured, and who
// ended QEMU. The guest stays up past the grace time, then powers off.
func TestBootJSONReportsPhases(t *testing.T) {
	t.Parallel()
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	dir := noneRecipe(t, "echo json-boot-ok\nsleep 6\npoweroff -f\n", 0o755)
	art := filepath.Join(dir, "app.cpio.gz")
	mustFledge(t, dir, nil, "pack", "-o", art)
	env := []string{"FLEDGE_KERNEL=" + testKernel(t)}

	r := fledge(t, dir, env, "boot", art, "--json", "--expect", "^json-boot-ok$")
	rep := oneBootReport(t, r.stdout)
	if r.code != 0 || rep.Verdict != "ok" || rep.Elapsed <= 0 || !rep.Stopped || !strings.Contains(rep.Reason, "QEMU stopped") {
		t.Fatalf("exit %d, report %+v; want ok, QEMU stopped by fledge after the grace time\nstderr:\n%s", r.code, rep, r.stderr)
	}
	var sum float64
	for name, p := range map[string]*float64{"kernel_s": rep.Phases.Kernel, "unpack_s": rep.Phases.Unpack, "init_s": rep.Phases.Init, "userspace_s": rep.Phases.Userspace} {
		if p == nil || *p < 0 {
			t.Fatalf("phase %s is %v; want a measured duration: %s", name, p, r.stdout)
		}
		sum += *p
	}
	if sum > rep.Elapsed {
		t.Errorf("phases add up to %.3fs, more than the %.3fs boot", sum, rep.Elapsed)
	}
	if !strings.Contains(r.stderr, "Run /init as init process") || !strings.Contains(r.stderr, "json-boot-ok") {
		t.Errorf("the console did not go to stderr:\n%s", r.stderr)
	}

	log := filepath.Join(t.TempDir(), "console.log")
	r = fledge(t, dir, env, "boot", art, "--json", "--console", log, "--expect", "^never$", "--timeout", "90s")
	if rep := oneBootReport(t, r.stdout); r.code != exitBootFailed || rep.Verdict != "failed" || !strings.Contains(rep.Reason, "no console line matched") || rep.Stopped {
		t.Errorf("exit %d, report %+v; want failed, naming the missing line, the guest powered off by itself", r.code, rep)
	}
	if b, err := os.ReadFile(log); err != nil || !bytes.Contains(b, []byte("json-boot-ok")) || strings.Contains(r.stderr, "json-boot-ok") {
		t.Errorf("--console: file %d bytes (%v), stderr %q; want the console in the file only", len(b), err, r.stderr)
	}
}

// A boot that cannot be attempted is still one object, verdict "error".
func TestBootJSONError(t *testing.T) {
	dir := noneRecipe(t, "poweroff -f\n", 0o755)
	r := fledge(t, dir, []string{"FLEDGE_KERNEL=/nonexistent/vmlinuz"}, "boot", "--json")
	rep := oneBootReport(t, r.stdout)
	if r.code != 1 || rep.Verdict != "error" || !strings.Contains(rep.Reason, "$FLEDGE_KERNEL") || rep.Phases.Kernel != nil {
		t.Fatalf("exit %d, report %+v; want an error naming $FLEDGE_KERNEL", r.code, rep)
	}
}

// A file that is not a kernel is refused before anything is packed or
// booted, as a boot that could not be attempted (exit 1), naming what it is.
func TestBootRefusesANonKernel(t *testing.T) {
	dir := noneRecipe(t, "poweroff -f\n", 0o755)
	src := filepath.Join(dir, "hello.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void) { puts(\"hi\"); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := fledge(t, dir, nil, "boot", "--kernel", "hello.c")
	for _, want := range []string{"hello.c is text beginning \"#include <stdio.h>\"", "expected a bzImage", "--kernel PATH"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("boot --kernel hello.c: exit %d (want 1), stderr %q (want %q)", r.code, r.stderr, want)
		}
	}
	if strings.Contains(r.stdout, "Linux") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("want one line and no boot; stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = fledge(t, dir, []string{"FLEDGE_KERNEL=" + src}, "boot", "--json")
	if rep := oneBootReport(t, r.stdout); r.code != 1 || rep.Verdict != "error" || !strings.Contains(rep.Reason, "not a kernel") {
		t.Errorf("boot --json with $FLEDGE_KERNEL=hello.c: exit %d, report %+v; want an error saying it is not a kernel", r.code, rep)
	}
}

// --dry-run prints the QEMU command as one line that a shell reads back as
// the same words: an --append holding an escape sequence and a newline is
// quoted as $'…', never sent raw to the terminal.
func TestBootDryRunIsOneShellLine(t *testing.T) {
	needTool(t, "bash", "bash")
	dir := noneRecipe(t, "poweroff -f\n", 0o755)
	appended := "a\x1b[31mb\nc 'q'"
	r := mustFledge(t, dir, nil, "boot", "--kernel", testKernel(t), "--append", appended, "--dry-run")
	line := strings.TrimSuffix(r.stdout, "\n")
	if strings.ContainsAny(line, "\n\x1b") {
		t.Fatalf("dry run printed control characters raw: %q", r.stdout)
	}
	out, err := exec.Command("bash", "-c", "set -- "+line+`; printf '%s\0' "$@"`).Output()
	if err != nil {
		t.Fatalf("bash cannot read the dry run's line back: %v\n%s", err, line)
	}
	words := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	i := slices.Index(words, "-append")
	if i < 0 || i+1 == len(words) || !strings.HasSuffix(words[i+1], " "+appended) {
		t.Errorf("dry run's words %q; want -append ending in %q", words, appended)
	}
}

// oneBootReport decodes stdout, which must hold one JSON object and nothing
// else.
func oneBootReport(t *testing.T, stdout string) bootReport {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var rep bootReport
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not a boot report: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one object: %q", stdout)
	}
	var keys struct {
		Phases map[string]any `json:"phases"`
	}
	if err := json.Unmarshal([]byte(stdout), &keys); err != nil || len(keys.Phases) != 5 {
		t.Fatalf("phases %v (%v); want the five keys, null when unknown", keys.Phases, err)
	}
	return rep
}

func TestFindKernel(t *testing.T) {
	boot := t.TempDir()
	write := func(name string, age time.Duration) string {
		p := filepath.Join(boot, name)
		if err := os.WriteFile(p, []byte("k"), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("vmlinuz-5.10.0-1-amd64", 2*time.Hour)
	newest := write("vmlinuz-6.1.0-9-amd64", time.Hour)
	running := write("vmlinuz-6.1.0-2-amd64", 3*time.Hour)
	tests := []struct {
		name, flag, env, release, want, wantErr string
	}{
		{"flag wins", old, newest, "6.1.0-2-amd64", old, ""},
		{"then the environment", "", old, "6.1.0-2-amd64", old, ""},
		{"then the running kernel", "", "", "6.1.0-2-amd64", running, ""},
		{"then the newest", "", "", "6.5.0-1-amd64", newest, ""},
		{"a named kernel must exist", "", "/nonexistent", "", "", "$FLEDGE_KERNEL: stat /nonexistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findKernel(tt.flag, tt.env, boot, tt.release)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
	_, err := findKernel("", "", t.TempDir(), "6.1.0-2-amd64")
	for _, place := range []string{"--kernel", "$FLEDGE_KERNEL", "vmlinuz-6.1.0-2-amd64", "vmlinuz-*"} {
		if err == nil || !strings.Contains(err.Error(), place) {
			t.Errorf("error %v; want it to name %s", err, place)
		}
	}
}
