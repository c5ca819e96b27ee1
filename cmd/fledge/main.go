// Command fledge authors minimal, fast-booting initramfs images for Volant
// microVM plugins. See README.md and docs/ for the recipe format.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// The first signal cancels the work, which then cleans up after itself
	// (BuildKit mounts, temporary files, QEMU); the cause names the signal.
	// Later signals get their default action again, so a second Ctrl-C ends
	// a fledge that is stuck.
	go func() {
		s := <-sigs
		signal.Stop(sigs)
		cancel(signalled{s.(syscall.Signal)})
	}()
	err := newRootCmd().ExecuteContext(ctx)
	signal.Stop(sigs)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "fledge:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "fledge:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a specific status (check, boot and diff
// report their verdict that way).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// signalled is the cause of a context canceled by a signal. A command that
// reports it ends with the shell's status for the signal, 128 + its number.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string { return unix.SignalName(s.sig) + " received" }

// exitCode is the status a shell gives a process the signal ended.
func (s signalled) exitCode() int { return 128 + int(s.sig) }
