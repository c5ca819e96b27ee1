package inspect

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/volantvm/fledge/overlay"
)

// dynamicApp compiles a program that needs libb.so (found through its
// RUNPATH $ORIGIN/lib/app), which needs liba.so (found in /usr/lib), and
// returns the entries of an image holding all of it with glibc.
func dynamicApp(t *testing.T) []overlay.Entry {
	t.Helper()
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.c", "int a(void) { return 1; }\n")
	write("b.c", "int a(void);\nint b(void) { return a() + 1; }\n")
	write("main.c", "int b(void);\nint main(void) { return b(); }\n")
	gcc := func(args ...string) {
		cmd := exec.Command("gcc", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s(install the Debian package gcc)", args, err, out)
		}
	}
	gcc("-shared", "-fPIC", "-o", "liba.so", "a.c")
	gcc("-shared", "-fPIC", "-o", "libb.so", "b.c", "-L.", "-la")
	gcc("-o", "app", "main.c", "-L.", "-lb", "-la", "-Wl,--no-as-needed,-rpath,$ORIGIN/lib/app")
	return []overlay.Entry{
		hostFile(t, "/init", 0o755, filepath.Join(dir, "app")),
		hostFile(t, "/lib/app/libb.so", 0o755, filepath.Join(dir, "libb.so")),
		hostFile(t, "/usr/lib/liba.so", 0o755, filepath.Join(dir, "liba.so")),
		hostFile(t, "/lib/x86_64-linux-gnu/libc.so.6", 0o755, hostLibc),
		hostFile(t, "/lib64/ld-linux-x86-64.so.2", 0o755, hostLoader),
	}
}
