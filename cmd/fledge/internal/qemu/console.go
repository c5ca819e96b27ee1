package qemu

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// console receives QEMU's serial output, keeps all of it, passes it on to a
// live writer and watches it line by line for the expected line and for
// failure markers. Lines are judged whole, so a match never depends on how
// the pipe happened to split the stream.
type console struct {
	mu      sync.Mutex
	out     bytes.Buffer
	checked int // bytes of out already judged (always at a line start)
	start   time.Time
	expect  *regexp.Regexp
	live    io.Writer

	matched     bool
	matchedAt   time.Duration
	matchedLine string
	timeline    timeline
	// failureAt is the offset in out of the first line holding a failure
	// marker, or -1; the line is read out whole when the boot is over, as
	// a prompt may have been caught before its line was finished.
	failureAt int
	// failed is closed when the first failure marker shows up, so the
	// runner can stop a guest that will never power off by itself.
	failed chan struct{}
	// expected is closed when the expected line first shows up, so the
	// runner can time the grace a guest that stays up is given. With no
	// expected pattern it is never closed.
	expected chan struct{}
	// handover is closed when the kernel says it runs /init, at
	// handoverAt: a health check's deadline counts from there.
	handover   chan struct{}
	handoverAt time.Duration
}

func newConsole(expect *regexp.Regexp, live io.Writer, start time.Time) *console {
	return &console{
		expect: expect, live: live, start: start, failureAt: -1,
		failed: make(chan struct{}), expected: make(chan struct{}), handover: make(chan struct{}),
	}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(p)
	for {
		rest := c.out.Bytes()[c.checked:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		c.judge(string(rest[:i]))
		c.checked += i + 1
	}
	// A prompt waits at the end of an unfinished line ("Please press Enter
	// to activate this console. "), so markers are looked for there too;
	// the expected line is matched only whole.
	c.scanFailure(string(c.out.Bytes()[c.checked:]))
	if c.live != nil {
		// A broken live writer (a closed terminal) must not stop the boot
		// or the verdict; the output is still kept in full.
		_, _ = c.live.Write(p)
	}
	return len(p), nil
}

// finish judges a last line that ended without a newline.
func (c *console) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rest := c.out.Bytes()[c.checked:]; len(rest) > 0 {
		c.judge(string(rest))
		c.checked = c.out.Len()
	}
}

func (c *console) judge(line string) {
	line = strings.TrimRight(line, "\r")
	arrived := time.Since(c.start)
	first := !c.matched && c.expect != nil && c.expect.MatchString(line)
	if first {
		c.matched, c.matchedAt, c.matchedLine = true, arrived, line
		close(c.expected)
	}
	handedOver := c.timeline.runInit.ok
	c.timeline.see(line, arrived, first)
	if !handedOver && c.timeline.runInit.ok {
		c.handoverAt = arrived
		close(c.handover)
	}
	c.scanFailure(line)
}

// scanFailure looks for failure markers in line, which starts at c.checked.
func (c *console) scanFailure(line string) {
	if c.failureAt >= 0 {
		return
	}
	for _, m := range failureMarkers {
		if strings.Contains(line, m) {
			c.failureAt = c.checked
			close(c.failed)
			return
		}
	}
}

// handedOverAt is when the kernel's hand-over to /init arrived, counted
// from QEMU's start; read it once handover is closed.
func (c *console) handedOverAt() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handoverAt
}

// fill copies what the console saw into r.
func (c *console) fill(r *Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Output = bytes.Clone(c.out.Bytes())
	r.Matched, r.MatchedAt, r.MatchedLine = c.matched, c.matchedAt, c.matchedLine
	r.Phases = c.timeline.phases()
	if c.failureAt >= 0 {
		line, _, _ := bytes.Cut(c.out.Bytes()[c.failureAt:], []byte("\n"))
		r.Failure = string(bytes.TrimSpace(line))
	}
}
