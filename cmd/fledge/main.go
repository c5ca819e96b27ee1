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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels the work, which then cleans up after itself
	// (BuildKit mounts, temporary files). Later signals get their default
	// action again, so a second Ctrl-C ends a fledge that is stuck.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
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
