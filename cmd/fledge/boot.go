package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
}

func newBootCmd() *cobra.Command {
	var f bootFlags
	cmd := &cobra.Command{
		Use:   "boot [RECIPE|ARTIFACT] --kernel PATH",
		Short: "Boot the image under QEMU and judge the boot from the serial console",
		Long: `boot runs the image with the given kernel under QEMU (TCG unless --accel says
otherwise), streams the serial console to stdout, and decides: the boot
succeeds only when a console line matches --expect, none of "Kernel panic",
"Failed to execute", "Initramfs unpacking failed" or "Please press Enter"
appears, and the guest powers off by itself before --timeout. A recipe is packed
to a temporary archive first; an artifact is booted as it is.

The verdict and its reason are printed on stderr in one line. Exit status: 0
the boot succeeded, 2 it failed, 3 it timed out (QEMU killed), 1 it could not
be attempted.`,
		Example: `  fledge boot --kernel /boot/vmlinuz-6.1.0-amd64
  fledge boot dist/app.cpio.gz --kernel vmlinuz --expect '^app: ready$' --timeout 30s
  fledge boot --kernel vmlinuz --append 'loglevel=3' --memory 512 --accel kvm`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			return runBoot(cmd.Context(), cmd, &f, arg)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.kernel, "kernel", "", "kernel image to boot (bzImage or vmlinuz); required")
	fl.StringVar(&f.append, "append", "", "extra kernel command line, after \""+qemu.BaseAppend+"\"")
	fl.StringVar(&f.expect, "expect", "Run /init as init process", "regular expression a console line must match for success")
	fl.DurationVar(&f.timeout, "timeout", qemu.DefaultTimeout, "how long the boot may take before QEMU is killed (Go duration: 30s, 2m)")
	fl.IntVar(&f.memory, "memory", qemu.DefaultMemoryMB, "guest memory in MiB")
	fl.StringVar(&f.accel, "accel", qemu.DefaultAccel, "QEMU accelerator: tcg or kvm")
	return cmd
}

func runBoot(ctx context.Context, cmd *cobra.Command, f *bootFlags, arg string) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	t, err := f.open(ctx, cmd, arg)
	if err != nil {
		return err
	}
	defer t.Close()
	cfg.Initrd = t.Artifact
	if t.Recipe != nil {
		tmp, err := os.MkdirTemp("", "fledge-boot-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		cfg.Initrd = filepath.Join(tmp, "initramfs.cpio.gz")
		if _, err := packView(ctx, &f.stackFlags, t.Stack, cfg.Initrd, "gzip"); err != nil {
			return fmt.Errorf("packing %s for the boot: %w", t.Name(), err)
		}
	}
	cfg.Console = cmd.OutOrStdout()
	res, err := qemu.Boot(ctx, cfg)
	if err != nil {
		return err
	}
	switch {
	case res.OK:
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: boot ok:", res.Reason)
		return nil
	case res.TimedOut:
		return &exitError{code: exitBootTimedOut, msg: "boot timed out: " + res.Reason}
	}
	// Some of the runner's reasons already begin with the verdict.
	return &exitError{code: exitBootFailed, msg: "boot failed: " + strings.TrimPrefix(res.Reason, "boot failed: ")}
}

// config checks the flags before anything is packed, so a typo costs no
// build.
func (f *bootFlags) config() (qemu.Config, error) {
	if f.kernel == "" {
		return qemu.Config{}, fmt.Errorf("boot needs --kernel PATH (a bzImage or vmlinuz, e.g. /boot/vmlinuz-$(uname -r))")
	}
	if _, err := os.Stat(f.kernel); err != nil {
		return qemu.Config{}, fmt.Errorf("--kernel: %w", err)
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
		Kernel: f.kernel, Append: f.append, Expect: re, Timeout: f.timeout,
		MemoryMB: f.memory, Accel: f.accel,
	}, nil
}
