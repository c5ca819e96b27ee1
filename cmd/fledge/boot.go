package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/volantvm/fledge/cmd/fledge/internal/qemu"
)

// The exit statuses of boot (1 is left to "could not try").
const (
	exitBootFailed   = 2
	exitBootTimedOut = 3
)

type bootFlags struct {
	stackFlags
	kernel  string
	append  string
	expect  string
	timeout time.Duration
	memory  int
	accel   string
	json    bool
	console string
}

func newBootCmd() *cobra.Command {
	var f bootFlags
	cmd := &cobra.Command{
		Use:   "boot [RECIPE|ARTIFACT]",
		Short: "Boot the image under QEMU and judge the boot from the serial console",
		Long: `boot runs the image under QEMU (TCG unless --accel says otherwise), streams
the serial console to stdout, and decides: the boot succeeds only when a
console line matches --expect, none of "Kernel panic", "Failed to execute",
"Initramfs unpacking failed" or "Please press Enter" appears, and the guest
powers off by itself before --timeout. A recipe is packed to a temporary
archive first; an artifact is booted as it is.

The kernel is --kernel, else $FLEDGE_KERNEL, else /boot/vmlinuz-$(uname -r),
else the newest /boot/vmlinuz-* (by modification time).

Where the time went is read from the kernel's printk timestamps (printk.time=1
is always on the command line): kernel (start to "Trying to unpack rootfs image
as initramfs"), unpack (to "Freeing initrd memory"; kernels since 5.13 unpack
asynchronously, so other initcalls run meanwhile: --append initramfs_async=0
measures the unpack alone), init (to "Run /init as init process") and
userspace (to the expected line, whose guest time is the last kernel
timestamp plus the host time between the two lines' arrival).

The verdict, its reason and the phases are printed on stderr in one line
("?" for a phase the console did not show). With --json,
stdout holds exactly one object {"verdict": "ok"|"failed"|"timeout"|"error",
"reason", "elapsed_s", "phases": {"kernel_s", "unpack_s", "init_s",
"userspace_s"}} (a phase the console did not show is null) and the console
goes to stderr, or to --console FILE. Exit status: 0 the boot succeeded, 2 it
failed, 3 it timed out (QEMU killed), 1 it could not be attempted.`,
		Example: `  fledge boot --kernel /boot/vmlinuz-6.1.0-amd64
  fledge boot dist/app.cpio.gz --kernel vmlinuz --expect '^app: ready$' --timeout 30s
  FLEDGE_KERNEL=vmlinuz fledge boot dist/app.cpio.gz --json --console boot.log
  fledge boot --kernel vmlinuz --append 'loglevel=3' --memory 512 --accel kvm`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			if !f.json {
				return runBoot(cmd.Context(), cmd, &f, arg)
			}
			return runBootJSON(cmd.Context(), cmd, &f, arg)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.kernel, "kernel", "", "kernel image to boot (bzImage or vmlinuz); default $FLEDGE_KERNEL, /boot/vmlinuz-$(uname -r), the newest /boot/vmlinuz-*")
	fl.StringVar(&f.append, "append", "", "extra kernel command line, after \""+qemu.BaseAppend+"\"")
	fl.StringVar(&f.expect, "expect", "Run /init as init process", "regular expression a console line must match for success")
	fl.DurationVar(&f.timeout, "timeout", qemu.DefaultTimeout, "how long the boot may take before QEMU is killed (Go duration: 30s, 2m)")
	fl.IntVar(&f.memory, "memory", qemu.DefaultMemoryMB, "guest memory in MiB")
	fl.StringVar(&f.accel, "accel", qemu.DefaultAccel, "QEMU accelerator: tcg or kvm")
	fl.BoolVar(&f.json, "json", false, "print one JSON object {verdict, reason, elapsed_s, phases} on stdout; the console goes to stderr or --console")
	fl.StringVar(&f.console, "console", "", "write the serial console to FILE instead of stdout (stderr with --json)")
	return cmd
}

// runBoot boots and reports for humans: the console on stdout (or
// --console), the verdict and phases on stderr.
func runBoot(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	res, err := boot(ctx, cmd, f, arg, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	// One line: the verdict, then where the time went.
	phases := "; phases: " + humanPhases(res.Phases)
	switch {
	case res.OK:
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: boot ok:", res.Reason+phases)
		return nil
	case res.TimedOut:
		return &exitError{code: exitBootTimedOut, msg: "boot timed out: " + res.Reason + phases}
	}
	// Some of the runner's reasons already begin with the verdict.
	return &exitError{code: exitBootFailed, msg: "boot failed: " + strings.TrimPrefix(res.Reason, "boot failed: ") + phases}
}

// bootReport is the one object `boot --json` prints.
type bootReport struct {
	Verdict  string   `json:"verdict"`
	Reason   string   `json:"reason"`
	Elapsed  float64  `json:"elapsed_s"`
	Phases   phasesJS `json:"phases"`
	exitCode int
}

type phasesJS struct {
	Kernel    *float64 `json:"kernel_s"`
	Unpack    *float64 `json:"unpack_s"`
	Init      *float64 `json:"init_s"`
	Userspace *float64 `json:"userspace_s"`
}

// runBootJSON boots and prints exactly one object on stdout, whatever
// happens, so a script can always parse it; the exit status is runBoot's.
func runBootJSON(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	res, err := boot(ctx, cmd, f, arg, cmd.ErrOrStderr())
	rep := bootReport{Verdict: "error", exitCode: 1}
	switch {
	case err != nil:
		rep.Reason = err.Error()
	case res.OK:
		rep.Verdict, rep.exitCode = "ok", 0
	case res.TimedOut:
		rep.Verdict, rep.exitCode = "timeout", exitBootTimedOut
	default:
		rep.Verdict, rep.exitCode = "failed", exitBootFailed
	}
	if err == nil {
		rep.Reason = strings.TrimPrefix(res.Reason, "boot failed: ")
		rep.Elapsed = seconds(res.Elapsed)
		p := res.Phases
		rep.Phases = phasesJS{phaseJS(p.Kernel), phaseJS(p.Unpack), phaseJS(p.Init), phaseJS(p.Userspace)}
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	if werr := enc.Encode(rep); werr != nil {
		return werr
	}
	if rep.exitCode == 0 {
		return nil
	}
	return &exitError{code: rep.exitCode, msg: "boot " + rep.Verdict + ": " + rep.Reason}
}

func seconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1e6 }

func phaseJS(p qemu.Phase) *float64 {
	if !p.OK {
		return nil
	}
	s := seconds(p.Took)
	return &s
}

func humanPhases(p qemu.Phases) string {
	parts := make([]string, 0, 4)
	for _, ph := range []struct {
		name string
		p    qemu.Phase
	}{{"kernel", p.Kernel}, {"unpack", p.Unpack}, {"init", p.Init}, {"userspace", p.Userspace}} {
		v := "?"
		if ph.p.OK {
			v = fmt.Sprintf("%.3fs", ph.p.Took.Seconds())
		}
		parts = append(parts, ph.name+" "+v)
	}
	return strings.Join(parts, ", ")
}

// boot resolves the flags, packs a recipe if need be and boots, streaming
// the console to live unless --console names a file.
func boot(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string, live io.Writer) (qemu.Result, error) {
	cfg, err := f.config()
	if err != nil {
		return qemu.Result{}, err
	}
	t, err := f.open(ctx, cmd, arg)
	if err != nil {
		return qemu.Result{}, err
	}
	defer t.Close()
	cfg.Initrd = t.Artifact
	if t.Recipe != nil {
		tmp, err := os.MkdirTemp("", "fledge-boot-")
		if err != nil {
			return qemu.Result{}, err
		}
		defer os.RemoveAll(tmp)
		cfg.Initrd = filepath.Join(tmp, "initramfs.cpio.gz")
		if _, err := packView(ctx, cmd.ErrOrStderr(), &f.stackFlags, t.Stack, cfg.Initrd, "gzip"); err != nil {
			return qemu.Result{}, fmt.Errorf("packing %s for the boot: %w", t.Name(), err)
		}
	}
	cfg.Console = live
	if f.console != "" {
		out, err := os.Create(f.console)
		if err != nil {
			return qemu.Result{}, fmt.Errorf("--console: %w", err)
		}
		defer out.Close()
		cfg.Console = out
	}
	return qemu.Boot(ctx, cfg)
}

// config checks the flags before anything is packed, so a typo costs no
// build.
func (f *bootFlags) config() (qemu.Config, error) {
	kernel, err := findKernel(f.kernel, os.Getenv("FLEDGE_KERNEL"), "/boot", uname())
	if err != nil {
		return qemu.Config{}, err
	}
	re, err := regexp.Compile(f.expect)
	if err != nil {
		return qemu.Config{}, fmt.Errorf("--expect %q: not a regular expression: %w", f.expect, err)
	}
	if f.timeout <= 0 {
		return qemu.Config{}, fmt.Errorf("--timeout %s: expected a positive duration such as 30s or 2m", f.timeout)
	}
	if name, _, _ := strings.Cut(f.accel, ","); name != "tcg" && name != "kvm" {
		return qemu.Config{}, fmt.Errorf("--accel %q: expected tcg or kvm (QEMU options may follow a comma: tcg,thread=single)", f.accel)
	}
	if f.memory <= 0 {
		return qemu.Config{}, fmt.Errorf("--memory %d: expected a positive number of MiB", f.memory)
	}
	return qemu.Config{
		Kernel: kernel, Append: f.append, Expect: re, Timeout: f.timeout,
		MemoryMB: f.memory, Accel: f.accel,
	}, nil
}

// findKernel picks the kernel to boot: the flag, else the environment,
// else the running kernel's image in bootDir, else the newest image there.
// A kernel named by the user must exist; the error of a fruitless search
// names every place tried.
func findKernel(flag, env, bootDir, release string) (string, error) {
	for _, named := range []struct{ how, path string }{{"--kernel", flag}, {"$FLEDGE_KERNEL", env}} {
		if named.path == "" {
			continue
		}
		if _, err := os.Stat(named.path); err != nil {
			return "", fmt.Errorf("%s: %w", named.how, err)
		}
		return named.path, nil
	}
	tried := []string{"--kernel (not given)", "$FLEDGE_KERNEL (not set)"}
	if release != "" {
		running := filepath.Join(bootDir, "vmlinuz-"+release)
		if fi, err := os.Stat(running); err == nil && fi.Mode().IsRegular() {
			return running, nil
		}
		tried = append(tried, running+" (the running kernel's)")
	}
	if newest := newestKernel(bootDir); newest != "" {
		return newest, nil
	}
	tried = append(tried, filepath.Join(bootDir, "vmlinuz-*")+" (none)")
	return "", errors.New("no kernel to boot; tried " + strings.Join(tried, ", ") + "; name one with --kernel PATH or FLEDGE_KERNEL=PATH")
}

// newestKernel is the most recently modified bootDir/vmlinuz-*, or "".
func newestKernel(bootDir string) string {
	paths, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	type kernel struct {
		path string
		mod  time.Time
	}
	var ks []kernel
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			ks = append(ks, kernel{p, fi.ModTime()})
		}
	}
	if len(ks) == 0 {
		return ""
	}
	sort.Slice(ks, func(i, j int) bool {
		if !ks[i].mod.Equal(ks[j].mod) {
			return ks[i].mod.After(ks[j].mod)
		}
		return ks[i].path > ks[j].path
	})
	return ks[0].path
}

// uname is the running kernel's release, as `uname -r` prints it.
func uname() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
