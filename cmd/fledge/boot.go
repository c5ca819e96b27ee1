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
	"github.com/volantvm/fledge/fusefs"
	"github.com/volantvm/fledge/overlay/recipe"
	"github.com/volantvm/fledge/packer"
)

// maxCmdline is the longest kernel command line an x86 kernel keeps:
// COMMAND_LINE_SIZE (2048) less the terminating NUL.
const maxCmdline = 2047

// The exit statuses of boot (1 is left to "could not try").
const (
	exitBootFailed   = 2
	exitBootTimedOut = 3
)

type bootFlags struct {
	stackFlags
	kernel string
	append string
	expect string
	grace  time.Duration
	// graceSet tells a --grace given on the command line from its default.
	graceSet bool
	poweroff bool
	timeout  time.Duration
	memory   int
	accel    string
	json     bool
	console  string
	nic      bool
	// memorySet and expectSet tell flags given on the command line from
	// their defaults, which a manifest replaces.
	memorySet, expectSet bool
	manifest             string
	baseInitramfs        string
	keepRunning          bool
	dryRun               bool
}

func newBootCmd() *cobra.Command {
	var f bootFlags
	cmd := &cobra.Command{
		Use:   "boot [RECIPE|ARTIFACT]",
		Short: "Boot the image under QEMU and judge the boot from the serial console",
		Long: `boot runs the image under QEMU (TCG unless --accel says otherwise), streams
the serial console to stdout, and decides: the boot succeeds only when a
console line matches --expect before --timeout and none of "Kernel panic",
"Failed to execute", "Initramfs unpacking failed" or "Please press Enter"
appears, before it or in the --grace time (default 2s) after it. A plugin's
agent stays up waiting for work, so fledge then stops QEMU itself; a guest
that powers off sooner, with no failure shown, passes too. --expect-poweroff
is stricter: the guest must also power off by itself before --timeout. A
recipe is packed to a temporary archive first; an artifact is booted as it is.

The kernel is --kernel, else $FLEDGE_KERNEL, else, for a recipe with
[kernel], boot/vmlinuz-VERSION of its kernel.path (the kernel its modules
were built for), else /boot/vmlinuz-$(uname -r), else the newest
/boot/vmlinuz-* (by modification time). It must be a file QEMU boots with an
initramfs: a bzImage (as /boot/vmlinuz-* are), a multiboot image or an ELF
vmlinux with a PVH entry note; it is checked before anything is packed.

--nic gives the guest a virtio-net-pci NIC on QEMU's user network, where the
host's loopback answers at 10.0.2.2; with --append 'ip=10.0.2.15::10.0.2.2:
255.255.255.0::eth0:off' fledge's init configures it (see docs/kernel.md).

Where the time went is read from the kernel's printk timestamps (printk.time=1
is always on the command line): kernel (start to "Trying to unpack rootfs image
as initramfs"), unpack (to "Freeing initrd memory"; kernels since 5.13 unpack
asynchronously, so other initcalls run meanwhile: --append initramfs_async=0
measures the unpack alone), init (to "Run /init as init process") and
userspace (to the expected line, whose guest time is the last kernel
timestamp plus the host time between the two lines' arrival).

-m MANIFEST boots a plugin as Volant does and judges it by its health check
(docs/boot.md): Volant's kernel command line with ip= for QEMU's user network
and volant.manifest (the manifest as gzip-compressed JSON in unpadded
base64url, as Volant's pluginspec encodes it), -smp and -m from resources, a
virtio-net NIC with workload.base_url's port forwarded from a free port of
127.0.0.1. MANIFEST is a NAME.manifest.json, or for a recipe its
manifest.toml, completed as build completes it. fledge polls base_url +
health_check.endpoint through the forwarded port: ok on the first 2xx answer;
failed when health_check.timeout_ms (counted from the kernel's hand-over to
/init) passes without one, on a panic, or when the guest powers off first.
An --expect given must also appear; --grace and --expect-poweroff do not
go with -m (a plugin stays up). With --keep-running a healthy guest stays
up, and fledge prints the forwarded address until Ctrl-C. --base-initramfs
FILE boots an archive in front of the image, as Volant's kernel unpacks a
plugin over its built-in initramfs. --dry-run prints the QEMU command and
boots nothing (a recipe's archive in it is a temporary file, removed when
fledge exits: dry-run a built artifact to run the command yourself).

The verdict, its reason and the phases are printed on stderr in one line
("?" for a phase the console did not show). With --json, stdout holds exactly
one object {"verdict": "ok"|"failed"|"timeout"|"error"|"interrupted",
"reason", "elapsed_s", "stopped", "phases": {"kernel_s", "unpack_s",
"init_s", "userspace_s", "healthy_s"}, "cmdline"} ("stopped" is true when
fledge stopped QEMU, false when QEMU exited by itself; a phase the console did
not show is null; healthy_s, power-on to the first healthy answer, needs -m;
"cmdline" is the kernel command line) and the
console goes to stderr, or to --console FILE. Exit status: 0 the boot
succeeded, 2 it failed, 3 it timed out (QEMU killed), 1 it could not be
attempted, 130 Ctrl-C interrupted it (143 for SIGTERM; QEMU is stopped).`,
		Example: `  fledge boot --kernel /boot/vmlinuz-6.1.0-amd64
  fledge boot dist/app.cpio.gz --kernel vmlinuz --expect '^app: ready$' --timeout 30s
  fledge boot --kernel vmlinuz --expect '^app: ready$' --grace 5s   # 5s with no panic after the line
  fledge boot --kernel vmlinuz --expect '^app: done$' --expect-poweroff
  FLEDGE_KERNEL=vmlinuz fledge boot dist/app.cpio.gz --json --console boot.log
  fledge boot --kernel vmlinuz --append 'loglevel=3' --memory 512 --accel kvm
  fledge boot -c fledge.toml --nic --append 'ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off'
  fledge boot dist/http.cpio.gz -m dist/http.manifest.json --kernel vmlinuz
  fledge boot -c fledge.toml -m manifest.toml --keep-running    # then curl the printed address
  fledge boot dist/http.cpio.gz -m dist/http.manifest.json --kernel vmlinuz --dry-run
  fledge boot dist/app.cpio.gz --kernel vmlinuz --base-initramfs volant-base.cpio.gz`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			f.graceSet, f.memorySet, f.expectSet = fl.Changed("grace"), fl.Changed("memory"), fl.Changed("expect")
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			if f.dryRun {
				return runBootDryRun(cmd.Context(), cmd, &f, arg)
			}
			if !f.json {
				return runBoot(cmd.Context(), cmd, &f, arg)
			}
			return runBootJSON(cmd.Context(), cmd, &f, arg)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.kernel, "kernel", "", "kernel to boot (a bzImage such as /boot/vmlinuz-*, or a PVH vmlinux); default $FLEDGE_KERNEL, a recipe's [kernel] boot/vmlinuz-VERSION, /boot/vmlinuz-$(uname -r), the newest /boot/vmlinuz-*")
	fl.StringVar(&f.append, "append", "", "extra kernel command line, after \""+qemu.BaseAppend+"\"")
	fl.StringVar(&f.expect, "expect", "Run /init as init process", "regular expression a console line must match for success")
	fl.DurationVar(&f.grace, "grace", qemu.DefaultGrace, "after the expected line, how long the console must show no failure before the boot passes and QEMU is stopped")
	fl.BoolVar(&f.poweroff, "expect-poweroff", false, "also require the guest to power off by itself before --timeout (instead of --grace)")
	fl.DurationVar(&f.timeout, "timeout", qemu.DefaultTimeout, "how long the boot may take before QEMU is killed (Go duration: 30s, 2m)")
	fl.IntVar(&f.memory, "memory", qemu.DefaultMemoryMB, "guest memory in MiB")
	fl.StringVar(&f.accel, "accel", qemu.DefaultAccel, "QEMU accelerator: tcg or kvm")
	fl.BoolVar(&f.json, "json", false, "print one JSON object {verdict, reason, elapsed_s, stopped, phases, cmdline} on stdout; the console goes to stderr or --console")
	fl.StringVar(&f.console, "console", "", "write the serial console to FILE instead of stdout (stderr with --json)")
	fl.BoolVar(&f.nic, "nic", false, "give the guest a virtio-net-pci NIC on QEMU user networking (the host's loopback is 10.0.2.2)")
	fl.StringVarP(&f.manifest, "manifest", "m", "", "boot as Volant does with this plugin manifest (NAME.manifest.json, or a recipe's manifest.toml) and judge its health check")
	fl.StringVar(&f.baseInitramfs, "base-initramfs", "", "an initramfs the image is unpacked over, as Volant's kernel unpacks a plugin over its built-in one")
	fl.BoolVar(&f.keepRunning, "keep-running", false, "with -m: after a healthy answer, leave the guest up and print the forwarded address; Ctrl-C stops it")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the QEMU command line the boot would run (the kernel command line in it) and exit")
	return cmd
}

// runBootDryRun prints the QEMU command, shell-quoted, without booting. A
// recipe is still packed (the manifest's checksum is the archive's); the
// archive is removed afterwards.
func runBootDryRun(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	cfg, cleanup, err := prepareBoot(ctx, cmd, f, arg)
	defer cleanup()
	if err != nil {
		return err
	}
	quoted := make([]string, 0, 32)
	for _, a := range cfg.Command() {
		quoted = append(quoted, fusefs.ShellQuote(a))
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(quoted, " "))
	return err
}

// runBoot boots and reports for humans: the console on stdout (or
// --console), the verdict and phases on stderr.
func runBoot(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	res, err := boot(ctx, cmd, f, arg, cmd.OutOrStdout())
	if err != nil {
		if reason, code, ok := interrupted(ctx, res); ok {
			return &exitError{code: code, msg: "boot interrupted: " + reason}
		}
		return err
	}
	// One line: the verdict, then where the time went.
	phases := "; phases: " + humanPhases(res)
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
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason"`
	Elapsed float64  `json:"elapsed_s"`
	Stopped bool     `json:"stopped"`
	Phases  phasesJS `json:"phases"`
	// Cmdline is the kernel command line booted ("" when the boot could
	// not be attempted).
	Cmdline  string `json:"cmdline"`
	exitCode int
}

type phasesJS struct {
	Kernel    *float64 `json:"kernel_s"`
	Unpack    *float64 `json:"unpack_s"`
	Init      *float64 `json:"init_s"`
	Userspace *float64 `json:"userspace_s"`
	// Healthy is power-on (QEMU's start) to the first healthy answer.
	Healthy *float64 `json:"healthy_s"`
}

// runBootJSON boots and prints exactly one object on stdout, whatever
// happens, so a script can always parse it; the exit status is runBoot's.
func runBootJSON(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	res, err := boot(ctx, cmd, f, arg, cmd.ErrOrStderr())
	rep := bootReport{Verdict: "error", exitCode: 1}
	switch {
	case err != nil:
		rep.Reason = err.Error()
		if reason, code, ok := interrupted(ctx, res); ok {
			rep.Verdict, rep.Reason, rep.exitCode, rep.Stopped = "interrupted", reason, code, res.Stopped
		}
	case res.OK:
		rep.Verdict, rep.exitCode = "ok", 0
	case res.TimedOut:
		rep.Verdict, rep.exitCode = "timeout", exitBootTimedOut
	default:
		rep.Verdict, rep.exitCode = "failed", exitBootFailed
	}
	if err == nil {
		rep.Reason = strings.TrimPrefix(res.Reason, "boot failed: ")
		rep.Elapsed, rep.Stopped = seconds(res.Elapsed), res.Stopped
		p := res.Phases
		rep.Phases = phasesJS{phaseJS(p.Kernel), phaseJS(p.Unpack), phaseJS(p.Init), phaseJS(p.Userspace), phaseJS(healthyPhase(res))}
		rep.Cmdline = res.Cmdline
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

// interrupted tells whether a signal ended the boot, and if so says which
// and what became of QEMU (qemu.Boot returns once the killed QEMU has been
// waited for), with the shell's exit status for the signal.
func interrupted(ctx context.Context, res qemu.Result) (string, int, bool) {
	var s signalled
	if !errors.As(context.Cause(ctx), &s) {
		return "", 0, false
	}
	if res.PID == 0 {
		return s.Error() + " before QEMU started", s.exitCode(), true
	}
	return s.Error() + "; QEMU stopped", s.exitCode(), true
}

func seconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1e6 }

func phaseJS(p qemu.Phase) *float64 {
	if !p.OK {
		return nil
	}
	s := seconds(p.Took)
	return &s
}

// healthyPhase is power-on to the first healthy answer, when there was one.
func healthyPhase(res qemu.Result) qemu.Phase {
	return qemu.Phase{Took: res.HealthyAt, OK: res.Healthy}
}

// namedPhase is a phase as the human report lists it.
type namedPhase struct {
	name string
	p    qemu.Phase
}

// humanPhases lists the phases; healthy only for a boot with a health
// check.
func humanPhases(res qemu.Result) string {
	p := res.Phases
	phases := []namedPhase{{"kernel", p.Kernel}, {"unpack", p.Unpack}, {"init", p.Init}, {"userspace", p.Userspace}}
	if res.Healthy || res.Health != "" {
		phases = append(phases, namedPhase{"healthy", healthyPhase(res)})
	}
	parts := make([]string, 0, len(phases))
	for _, ph := range phases {
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
	cfg, cleanup, err := prepareBoot(ctx, cmd, f, arg)
	defer cleanup()
	if err != nil {
		return qemu.Result{}, err
	}
	var status *statusLine
	if cfg.Health != nil && f.console == "" {
		status = newStatusLine(live, os.Stderr)
	}
	if status != nil {
		live = status
		cfg.Health.Status = func(s string) { status.Set("waiting for " + s) }
		defer status.Set("")
	}
	if h := cfg.Health; h != nil && f.keepRunning {
		h.Serving = func(addr string) {
			if status != nil {
				status.Set("")
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "fledge: healthy; the plugin serves %s at http://%s (try: curl http://%s%s); Ctrl-C stops it\n", h.URL, addr, addr, h.RequestURI)
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

// prepareBoot resolves the flags and the target into what QEMU boots:
// the kernel, the archive (a recipe packed to a temporary file, a base
// archive in front), and with -m Volant's command line, resources and
// health check. cleanup removes the temporary files; call it even on an
// error.
func prepareBoot(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) (qemu.Config, func(), error) {
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	cfg, err := f.config()
	if err != nil {
		return cfg, cleanup, err
	}
	t, err := f.open(ctx, cmd, arg)
	if err != nil {
		return cfg, cleanup, err
	}
	closers = append(closers, func() { t.Close() })
	if cfg.Kernel == "" {
		if cfg.Kernel, err = defaultKernel(t.Recipe); err != nil {
			return cfg, cleanup, err
		}
		if err := checkKernel(cfg.Kernel); err != nil {
			return cfg, cleanup, err
		}
	}
	// The manifest is read before packing, so a mistake in it costs no
	// pack.
	var m *recipe.Manifest
	if f.manifest != "" {
		if m, err = readManifest(cmd, f.manifest); err != nil {
			return cfg, cleanup, err
		}
	}
	cfg.Initrd = t.Artifact
	var tmp string
	if t.Recipe != nil || f.baseInitramfs != "" {
		if tmp, err = os.MkdirTemp("", "fledge-boot-"); err != nil {
			return cfg, cleanup, err
		}
		closers = append(closers, func() { os.RemoveAll(tmp) })
	}
	var packed packer.Result
	if t.Recipe != nil {
		cfg.Initrd = filepath.Join(tmp, "initramfs.cpio.gz")
		if packed, err = packView(ctx, cmd.ErrOrStderr(), &f.stackFlags, t.Stack, cfg.Initrd, "gzip"); err != nil {
			return cfg, cleanup, fmt.Errorf("packing %s for the boot: %w", t.Name(), err)
		}
	}
	if m != nil {
		if err := f.volant(cmd, m, t, packed.SHA256, &cfg); err != nil {
			return cfg, cleanup, err
		}
	}
	if f.baseInitramfs != "" {
		joined := filepath.Join(tmp, "with-base.cpio")
		if err := withBase(f.baseInitramfs, cfg.Initrd, joined); err != nil {
			return cfg, cleanup, err
		}
		cfg.Initrd = joined
	}
	return cfg, cleanup, nil
}

// volant makes cfg boot t the way Volant boots a plugin with the manifest
// of -m: its command line, the VM size of its resources (--memory given
// on the command line wins), and its health check as the verdict. sum is
// the archive's sha256 when the boot packed it, "" for an artifact.
func (f *bootFlags) volant(cmd *cobra.Command, m *recipe.Manifest, t *target, sum string, cfg *qemu.Config) error {
	err := completeBootManifest(cmd, m, t, f.manifest, cfg.Initrd, sum)
	if err != nil {
		return err
	}
	if cfg.Cmdline, err = volantCmdline(m, f.append); err != nil {
		return err
	}
	if n := len(cfg.Cmdline); n > maxCmdline {
		msg := fmt.Sprintf("the kernel command line is %d bytes, more than the %d an x86 kernel keeps (COMMAND_LINE_SIZE), so Kestrel would read a cut volant.manifest, under Volant too; make the manifest smaller (workload.env, actions, labels)", n, maxCmdline)
		if !f.dryRun {
			return errors.New(msg)
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: warning:", msg)
	}
	if cfg.Health, err = healthCheck(m, f.manifest); err != nil {
		return err
	}
	cfg.Health.KeepRunning = f.keepRunning
	cfg.CPUs = m.Resources.CPUCores
	if !f.memorySet {
		cfg.MemoryMB = m.Resources.MemoryMB
	}
	return nil
}

// config checks the flags before anything is packed, so a typo costs no
// build.
// The kernel is found here only when the user names one: otherwise a
// recipe's [kernel] may name it, and defaultKernel looks once it is loaded.
func (f *bootFlags) config() (qemu.Config, error) {
	var kernel string
	if env := os.Getenv("FLEDGE_KERNEL"); f.kernel != "" || env != "" {
		k, err := findKernel(f.kernel, env, "/boot", uname())
		if err != nil {
			return qemu.Config{}, err
		}
		kernel = k
	}
	var re *regexp.Regexp
	if f.manifest == "" || f.expectSet {
		var err error
		if re, err = regexp.Compile(f.expect); err != nil {
			return qemu.Config{}, fmt.Errorf("--expect %q: not a regular expression: %w", f.expect, err)
		}
	}
	if f.timeout <= 0 {
		return qemu.Config{}, fmt.Errorf("--timeout %s: expected a positive duration such as 30s or 2m", f.timeout)
	}
	grace := f.grace
	switch {
	case f.manifest != "" && (f.poweroff || f.graceSet):
		return qemu.Config{}, fmt.Errorf("-m %s with --grace or --expect-poweroff: expected neither; with a manifest the verdict is its health check, and a plugin stays up", f.manifest)
	case f.keepRunning && f.manifest == "":
		return qemu.Config{}, errors.New("--keep-running without -m: expected a plugin manifest whose health check says when the guest is up; add -m NAME.manifest.json")
	case f.manifest != "":
		grace = 0
	case f.poweroff && f.graceSet:
		return qemu.Config{}, fmt.Errorf("--grace %s and --expect-poweroff: expected one of them; --grace lets a guest that stays up pass, --expect-poweroff requires it to power off by itself", f.grace)
	case f.poweroff:
		grace = 0
	case grace <= 0:
		return qemu.Config{}, fmt.Errorf("--grace %s: expected a positive duration such as 2s; to require the guest to power off by itself, use --expect-poweroff", f.grace)
	}
	if name, _, _ := strings.Cut(f.accel, ","); name != "tcg" && name != "kvm" {
		return qemu.Config{}, fmt.Errorf("--accel %q: expected tcg or kvm (QEMU options may follow a comma: tcg,thread=single)", f.accel)
	}
	if f.memory <= 0 {
		return qemu.Config{}, fmt.Errorf("--memory %d: expected a positive number of MiB", f.memory)
	}
	// The kernel is read last, once the flags are known to be good.
	if kernel != "" {
		if err := checkKernel(kernel); err != nil {
			return qemu.Config{}, err
		}
	}
	return qemu.Config{
		Kernel: kernel, Append: f.append, Expect: re, Timeout: f.timeout,
		Grace: grace, MemoryMB: f.memory, Accel: f.accel, NIC: f.nic,
	}, nil
}

// checkKernel refuses, before anything is packed, a file QEMU cannot boot.
func checkKernel(kernel string) error {
	if err := qemu.CheckKernel(kernel); err != nil {
		return fmt.Errorf("%w; name one with --kernel PATH or FLEDGE_KERNEL=PATH", err)
	}
	return nil
}

// defaultKernel is the kernel of a recipe's [kernel] tree, or else the
// host's (see findKernel).
func defaultKernel(r *recipe.Recipe) (string, error) {
	if r == nil || r.Kernel == nil {
		return findKernel("", "", "/boot", uname())
	}
	k, err := r.KernelImage()
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(k); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("no kernel to boot: [kernel] path %s has no regular file boot/%s for the modules of %s; name the kernel with --kernel PATH", r.Kernel.Path, filepath.Base(k), r.File)
	}
	return k, nil
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
