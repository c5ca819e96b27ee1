package initc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// cacheKey hashes everything that determines the binary: the source, the
// compiler identity and the flags (with the placeholder for the build
// directory, which varies but does not reach the output).
func cacheKey(compilerID string) string {
	h := sha256.New()
	fmt.Fprintf(h, "source %d\n", len(source))
	h.Write(source)
	fmt.Fprintf(h, "\ncompiler %d\n%s\n", len(compilerID), compilerID)
	fmt.Fprintf(h, "flags %s\n", strings.Join(flags, "\x00"))
	return hex.EncodeToString(h.Sum(nil))
}

// readCache returns the cached binary at path; ok is false when there is
// none yet.
func readCache(path string) (bin []byte, ok bool, err error) {
	bin, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("initc: read cached init: %w", err)
	}
	return bin, true, nil
}

// writeCache stores bin at path through a temporary file and a rename, so
// a concurrent or interrupted Build never sees half a binary.
func writeCache(path string, bin []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("initc: create cache directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("initc: write cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(bin); err != nil {
		tmp.Close()
		return fmt.Errorf("initc: write cache %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("initc: write cache %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("initc: write cache: %w", err)
	}
	return nil
}
