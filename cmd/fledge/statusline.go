package main

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// statusLine keeps one line of status under a console streamed to the
// same terminal: the line is wiped before console output and drawn again
// after it whenever the console is at the start of a line, so the two
// never mix.
type statusLine struct {
	mu      sync.Mutex
	console io.Writer // where the console goes
	term    *os.File  // the terminal the status is drawn on (stderr)
	text    string
	atStart bool // the console's output so far ends a line
	shown   bool
}

// newStatusLine returns a status line over console when both console and
// term are the same kind of thing, a terminal, and nil otherwise.
func newStatusLine(console io.Writer, term *os.File) *statusLine {
	out, ok := console.(*os.File)
	if !ok || !isTerminal(out) || !isTerminal(term) {
		return nil
	}
	return &statusLine{console: console, term: term, atStart: true}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wipe()
	n, err := s.console.Write(p)
	if len(p) > 0 {
		s.atStart = p[len(p)-1] == '\n'
	}
	s.draw()
	return n, err
}

// Set replaces the status; "" removes it.
func (s *statusLine) Set(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wipe()
	s.text = text
	s.draw()
}

func (s *statusLine) wipe() {
	if s.shown {
		_, _ = io.WriteString(s.term, "\r\033[K")
		s.shown = false
	}
}

func (s *statusLine) draw() {
	if s.text == "" || !s.atStart {
		return
	}
	line := "fledge: " + s.text
	// A line wider than the terminal would wrap, and \r wipes only the last
	// row of it.
	if ws, err := unix.IoctlGetWinsize(int(s.term.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 1 {
		if r := []rune(line); len(r) >= int(ws.Col) {
			line = string(r[:ws.Col-1])
		}
	}
	_, _ = io.WriteString(s.term, line)
	s.shown = true
}
