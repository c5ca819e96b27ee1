package fetch

import (
	"fmt"
	"strings"
)

// ParseChecksum accepts the forms a recipe may give for agent.checksum,
// "sha256:<hex>" or bare hex, and returns the lowercase hex ("" for "").
func ParseChecksum(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	algo, hexpart, found := strings.Cut(s, ":")
	if !found {
		hexpart = algo
	} else if !strings.EqualFold(algo, "sha256") {
		return "", fmt.Errorf("agent.checksum %q: unsupported algorithm %q; write sha256:<64 hex digits>", s, algo)
	}
	h, err := normalizeHex(hexpart)
	if err != nil {
		return "", fmt.Errorf("agent.checksum %q: %w; write sha256:<64 hex digits>", s, err)
	}
	return h, nil
}

// normalizeHex checks a sha256 given as hex and lowercases it.
func normalizeHex(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("a sha256 is 64 hex digits, got %d characters in %q", len(s), s)
	}
	s = strings.ToLower(s)
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return "", fmt.Errorf("a sha256 is 64 hex digits, found %q in %q", r, s)
		}
	}
	return s, nil
}
