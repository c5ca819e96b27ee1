package fetch

import (
	"fmt"
	"io"
	"time"
)

// progressEvery is how long a download runs before the user hears about
// it, and how often after that: quick downloads stay silent.
const progressEvery = time.Second

// progress counts bytes written through it and prints a line to out at
// most once per progressEvery.
type progress struct {
	out     io.Writer
	name    string
	size    int64
	n       int64
	last    time.Time
	printed bool
}

func newProgress(out io.Writer, name string, size int64) *progress {
	return &progress{out: out, name: name, size: size, last: time.Now()}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.out == nil || time.Since(p.last) < progressEvery {
		return len(b), nil
	}
	p.last = time.Now()
	p.printed = true
	if p.size > 0 {
		fmt.Fprintf(p.out, "fetching %s: %s of %s (%d%%)\n", p.name, human(p.n), human(p.size), p.n*100/p.size)
	} else {
		fmt.Fprintf(p.out, "fetching %s: %s\n", p.name, human(p.n))
	}
	return len(b), nil
}

// done closes a download that printed progress with its final size.
func (p *progress) done(n int64) {
	if p.out != nil && p.printed {
		fmt.Fprintf(p.out, "fetched %s: %s\n", p.name, human(n))
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
