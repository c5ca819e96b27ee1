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
	failure     string
	// failed is closed when the first failure marker shows up, so the
	// runner can stop a guest that will never power off by itself.
	failed chan struct{}
}

func newConsole(expect *regexp.Regexp, live io.Writer, start time.Time) *console {
	return &console{expect: expect, live: live, start: start, failed: make(chan struct{})}
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
	if !c.matched && c.expect.MatchString(line) {
		c.matched, c.matchedAt, c.matchedLine = true, time.Since(c.start), line
	}
	if c.failure != "" {
		return
	}
	for _, m := range failureMarkers {
		if strings.Contains(line, m) {
			c.failure = strings.TrimSpace(line)
			close(c.failed)
			return
		}
	}
}

// fill copies what the console saw into r.
func (c *console) fill(r *Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Output = bytes.Clone(c.out.Bytes())
	r.Matched, r.MatchedAt, r.MatchedLine = c.matched, c.matchedAt, c.matchedLine
	r.Failure = c.failure
}
