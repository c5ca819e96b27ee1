package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The guest's side of QEMU's user network: the address the guest is given
// (the first one QEMU's DHCP server would hand out), the host as the guest
// sees it, and the netmask.
const (
	GuestAddr   = "10.0.2.15"
	GuestGW     = "10.0.2.2"
	GuestMask   = "255.255.255.0"
	healthEvery = 100 * time.Millisecond
	// probeTimeout bounds one request. Until the guest's network is up,
	// QEMU holds a forwarded connection open while it retries the guest,
	// so a short bound finds a server that just came up soon after.
	probeTimeout = time.Second
)

// Health is an HTTP health check of the guest's workload, run from the host
// through a port of its loopback that QEMU forwards to the guest, the way
// Volant's agent probes a plugin's workload.base_url + health_check.endpoint.
type Health struct {
	// URL is what the manifest names (base_url + endpoint), for reasons.
	URL string
	// Host is the Host header sent (base_url's host), RequestURI the path
	// requested.
	Host, RequestURI string
	// GuestPort of the guest (at GuestAddr) is forwarded from HostPort of
	// 127.0.0.1.
	GuestPort, HostPort int
	// Timeout counts from the kernel's hand-over to /init: the check fails
	// when no 2xx answer came by then.
	Timeout time.Duration
	// KeepRunning leaves the guest up after a healthy answer, until the
	// boot's context is canceled or the guest stops.
	KeepRunning bool
	// Serving, when set, is called once when the guest answered healthy
	// and is kept running, with the forwarded address.
	Serving func(addr string)
	// Status, when set, is told what each probe found, as it happens.
	Status func(string)
}

// Addr is the forwarded address on the host's loopback.
func (h *Health) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(h.HostPort))
}

// healthOutcome is what a check found: a healthy answer at (counted from
// QEMU's start), or the reason it failed.
type healthOutcome struct {
	ok     bool
	at     time.Duration
	reason string
}

// checker polls a Health until a 2xx answer, its deadline, or ctx ends.
type checker struct {
	h     *Health
	start time.Time
	mu    sync.Mutex
	// last is what the most recent probe found ("" before the first), and
	// answered whether that was an HTTP answer.
	last     string
	answered bool
}

func (c *checker) lastFound() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.answered
}

// run probes until one answer is 2xx or the deadline passed (it starts at
// the hand-over the console reports), then sends the outcome on done.
// It returns silently when ctx ends first.
func (c *checker) run(ctx context.Context, con *console, done chan<- healthOutcome) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	target := "http://" + c.h.Addr() + c.h.RequestURI
	handover := con.handover
	var deadline time.Time
	tick := time.NewTicker(healthEvery)
	defer tick.Stop()
	for {
		if handover == nil && !deadline.IsZero() && time.Now().After(deadline) {
			done <- healthOutcome{reason: c.deadlineReason()}
			return
		}
		found, code := c.probe(ctx, client, target, deadline)
		if ctx.Err() != nil {
			return
		}
		if code >= 200 && code < 300 {
			at := time.Since(c.start)
			done <- healthOutcome{ok: true, at: at, reason: fmt.Sprintf("%s answered %s after %s (power-on to answer; forwarded from %s)", c.h.URL, found, round(at), c.h.Addr())}
			return
		}
		c.mu.Lock()
		c.last, c.answered = found, code != 0
		c.mu.Unlock()
		if c.h.Status != nil {
			c.h.Status(fmt.Sprintf("%s: %s (%s)", c.h.URL, found, round(time.Since(c.start))))
		}
		select {
		case <-ctx.Done():
			return
		case <-handover:
			handover = nil
			deadline = c.start.Add(con.handedOverAt() + c.h.Timeout)
		case <-tick.C:
		}
	}
}

// probe makes one request; found says what came back: the status, and for
// a non-2xx one the body's first line, or why nothing did (code 0).
func (c *checker) probe(ctx context.Context, client *http.Client, target string, deadline time.Time) (found string, code int) {
	limit := probeTimeout
	if !deadline.IsZero() {
		limit = min(limit, max(time.Until(deadline), healthEvery))
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err.Error(), 0
	}
	req.Host = c.h.Host
	resp, err := client.Do(req)
	if err != nil {
		return noAnswer(err, limit), 0
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.Status, resp.StatusCode
	}
	line, _, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadLine()
	return fmt.Sprintf("%s, body %q", resp.Status, clip(string(line))), resp.StatusCode
}

// noAnswer says why a request got no answer, from the error found.
func noAnswer(err error, limit time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// QEMU accepts on the host's side, then closes when nothing in the
		// guest accepts the forwarded connection.
		return "connection closed without an answer"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out after " + limit.String()
	}
	return err.Error()
}

// deadlineReason says how the check failed at its deadline.
func (c *checker) deadlineReason() string {
	last, answered := c.lastFound()
	within := fmt.Sprintf("within %s (health_check.timeout_ms, counted from the kernel's hand-over to /init)", c.h.Timeout)
	if answered {
		return fmt.Sprintf("no healthy answer %s from %s: it answered %s", within, c.h.URL, last)
	}
	if last == "" {
		last = "no probe made"
	}
	return fmt.Sprintf("no answer %s from %s (forwarded from %s): %s", within, c.h.URL, c.h.Addr(), last)
}
