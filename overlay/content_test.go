package overlay

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO swapped in for a mapped file must be refused at once: a blocking
// open would wait for a writer forever, hanging the pack past Ctrl-C.
func TestHostFileRefusesAFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := HostFile(p).Open()
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no longer a regular file") {
			t.Fatalf("Open of a FIFO: %v, want a 'no longer a regular file' error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open of a FIFO still blocked after 10 s")
	}
}
