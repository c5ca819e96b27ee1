package qemu

import (
	"regexp"
	"testing"
	"time"
)

func TestConsoleJudgesWholeLines(t *testing.T) {
	tests := []struct {
		name        string
		chunks      []string
		matchedLine string
		failure     string
	}{
		{"line split across writes", []string{"boot\r\nfledge-te", "st: re", "ady\r\n"}, "fledge-test: ready", ""},
		{"last line without newline", []string{"boot\r\n", "fledge-test: ready"}, "fledge-test: ready", ""},
		{"anchored expect needs the whole line", []string{"xx fledge-test: ready\n"}, "", ""},
		{"first failure wins", []string{"[ 1.0] Failed to execute /init (error -2)\n", "Kernel panic - not syncing\n"}, "", "[ 1.0] Failed to execute /init (error -2)"},
		{"marker split across writes", []string{"Initramfs unpack", "ing failed: junk\n"}, "", "Initramfs unpacking failed: junk"},
		{"match and failure both kept", []string{"fledge-test: ready\n", "Please press Enter to activate this console.\n"}, "fledge-test: ready", "Please press Enter to activate this console."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole(regexp.MustCompile(`^fledge-test: ready$`), nil, time.Now())
			for _, chunk := range tt.chunks {
				if _, err := c.Write([]byte(chunk)); err != nil {
					t.Fatal(err)
				}
			}
			c.finish()
			var r Result
			c.fill(&r)
			if r.MatchedLine != tt.matchedLine || r.Matched != (tt.matchedLine != "") || r.Failure != tt.failure {
				t.Fatalf("matched %v %q, failure %q; want %q, %q", r.Matched, r.MatchedLine, r.Failure, tt.matchedLine, tt.failure)
			}
			select {
			case <-c.failed:
				if tt.failure == "" {
					t.Error("failed channel closed without a failure")
				}
			default:
				if tt.failure != "" {
					t.Error("failed channel still open after a failure")
				}
			}
		})
	}
}

func TestVerdictNamesTheFirstBrokenRule(t *testing.T) {
	strict := Config{Expect: regexp.MustCompile(`ready`), Timeout: 30 * time.Second}
	grace := strict
	grace.Grace = 2 * time.Second
	out := []byte("booting\r\nlast words\r\n")
	tests := []struct {
		name string
		r    Result
		cfg  Config
		out  outcome
		ok   bool
		want string
	}{
		{"clean", Result{Matched: true, MatchedAt: 2 * time.Second, Elapsed: 3 * time.Second}, strict, outcome{}, true,
			"expected line appeared after 2s; the guest powered off after 3s"},
		{"failure beats a match", Result{Matched: true, Failure: "Kernel panic - not syncing"}, strict, outcome{}, false,
			`boot failed: the console shows "Kernel panic - not syncing"; QEMU exited`},
		{"failure stopped", Result{Failure: "Please press Enter"}, strict, outcome{stoppedOnFailure: true}, false,
			`boot failed: the console shows "Please press Enter"; QEMU stopped 2s later`},
		{"hung after match", Result{Matched: true, MatchedAt: time.Second, TimedOut: true, ExitCode: -1}, strict, outcome{timedOut: true}, false,
			"expected line appeared after 1s, but the guest did not power off within 30s; QEMU killed"},
		{"hung before match", Result{TimedOut: true, ExitCode: -1, Output: out}, strict, outcome{timedOut: true}, false,
			`no console line matched "ready" within 30s; QEMU killed (last console line: "last words")`},
		{"qemu error", Result{ExitCode: 1, Stderr: []byte("qemu: bad option\nmore\n")}, strict, outcome{}, false,
			"QEMU exited with status 1: qemu: bad option"},
		{"qemu error, silent", Result{ExitCode: 1}, strict, outcome{}, false,
			"QEMU exited with status 1: (nothing on stderr)"},
		{"no match", Result{Elapsed: 4 * time.Second, Output: out}, strict, outcome{}, false,
			`the guest powered off after 4s but no console line matched "ready" (last console line: "last words")`},
		{"stays up", Result{Matched: true, MatchedAt: 6 * time.Second, ExitCode: -1}, grace, outcome{passed: true}, true,
			"expected line appeared after 6s and no failure followed within 2s; QEMU stopped"},
		{"stays up, then panics", Result{Matched: true, Failure: "Kernel panic - not syncing"}, grace, outcome{}, false,
			`boot failed: the console shows "Kernel panic - not syncing"; QEMU exited`},
		{"powers off within the grace", Result{Matched: true, MatchedAt: 2 * time.Second, Elapsed: 3 * time.Second}, grace, outcome{}, true,
			"expected line appeared after 2s; the guest powered off after 3s"},
		{"timeout within the grace", Result{Matched: true, MatchedAt: 29 * time.Second, TimedOut: true, ExitCode: -1}, grace, outcome{timedOut: true}, false,
			"expected line appeared after 29s, but the 30s timeout came before the 2s grace time after it had passed; QEMU killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := verdict(tt.r, tt.cfg, tt.out)
			if ok != tt.ok || reason != tt.want {
				t.Fatalf("got %v %q; want %v %q", ok, reason, tt.ok, tt.want)
			}
		})
	}
}

func TestConsoleCatchesAPromptWithoutNewline(t *testing.T) {
	c := newConsole(regexp.MustCompile(`ready`), nil, time.Now())
	for _, chunk := range []string{"\r\nPlease press Enter to act", "ivate this console. "} {
		if _, err := c.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.failed:
	default:
		t.Fatal("a prompt waiting at the end of an unfinished line was not noticed")
	}
	var r Result
	c.fill(&r)
	if r.Failure != "Please press Enter to activate this console." {
		t.Errorf("failure %q; want the prompt", r.Failure)
	}
}
