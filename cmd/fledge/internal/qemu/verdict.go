package qemu

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// verdict applies DESIGN §6: a boot succeeds only when the expected line
// appeared, no failure marker did, and either cfg.Grace went by after the
// line (the runner then stopped QEMU) or QEMU exited by itself (the guest
// powered off) before the timeout. The reason names the first rule broken.
func verdict(r Result, cfg Config, out outcome) (bool, string) {
	switch {
	case r.Failure != "":
		how := "QEMU exited"
		if out.stoppedOnFailure {
			how = fmt.Sprintf("QEMU stopped %s later", failureGrace)
		}
		return false, fmt.Sprintf("boot failed: the console shows %q; %s", clip(r.Failure), how)
	case cfg.Health != nil:
		return healthVerdict(r, cfg, out)
	case r.TimedOut && r.Matched && cfg.Grace > 0:
		return false, fmt.Sprintf("expected line appeared after %s, but the %s timeout came before the %s grace time after it had passed; QEMU killed", round(r.MatchedAt), cfg.Timeout, cfg.Grace)
	case r.TimedOut && r.Matched:
		return false, fmt.Sprintf("expected line appeared after %s, but the guest did not power off within %s; QEMU killed", round(r.MatchedAt), cfg.Timeout)
	case r.TimedOut:
		return false, fmt.Sprintf("no console line matched %q within %s; QEMU killed (last console line: %q)", cfg.Expect, cfg.Timeout, lastLine(r.Output))
	case out.passed:
		return true, fmt.Sprintf("expected line appeared after %s and no failure followed within %s; QEMU stopped", round(r.MatchedAt), cfg.Grace)
	case r.ExitCode != 0:
		return false, fmt.Sprintf("QEMU exited with status %d: %s", r.ExitCode, clip(firstLine(r.Stderr)))
	case !r.Matched:
		return false, fmt.Sprintf("the guest powered off after %s but no console line matched %q (last console line: %q)", round(r.Elapsed), cfg.Expect, lastLine(r.Output))
	}
	return true, fmt.Sprintf("expected line appeared after %s; the guest powered off after %s", round(r.MatchedAt), round(r.Elapsed))
}

// healthVerdict judges a boot with a health check: it passes when the
// check had a 2xx answer and the expected line, if any, appeared.
func healthVerdict(r Result, cfg Config, out outcome) (bool, string) {
	lineOK := cfg.Expect == nil || r.Matched
	switch {
	case out.unhealthy:
		return false, r.Health
	case out.passed && out.canceled:
		return true, r.Health + "; kept running until stopped"
	case out.passed && !out.stopped:
		return true, r.Health + fmt.Sprintf("; kept running until the guest powered off after %s", round(r.Elapsed))
	case out.passed:
		return true, r.Health + "; QEMU stopped"
	case r.TimedOut && r.Healthy:
		return false, fmt.Sprintf("%s, but no console line matched %q within %s; QEMU killed", r.Health, cfg.Expect, cfg.Timeout)
	case r.TimedOut:
		return false, fmt.Sprintf("no healthy answer from %s within the %s --timeout; QEMU killed (last probe: %s; last console line: %q)", cfg.Health.URL, cfg.Timeout, orNone(r.Health), lastLine(r.Output))
	case r.ExitCode != 0:
		return false, fmt.Sprintf("QEMU exited with status %d: %s", r.ExitCode, clip(firstLine(r.Stderr)))
	case r.Healthy && !lineOK:
		return false, fmt.Sprintf("%s, but the guest powered off after %s and no console line matched %q", r.Health, round(r.Elapsed), cfg.Expect)
	}
	return false, fmt.Sprintf("the guest powered off after %s, before %s answered (last probe: %s; last console line: %q)", round(r.Elapsed), cfg.Health.URL, orNone(r.Health), lastLine(r.Output))
}

func orNone(s string) string {
	if s == "" {
		return "none made"
	}
	return s
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	if len(line) == 0 {
		return "(nothing on stderr)"
	}
	return string(line)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return clip(strings.TrimSpace(lines[len(lines)-1]))
}

// clip keeps a reason on one readable line.
func clip(s string) string {
	const max = 160
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
