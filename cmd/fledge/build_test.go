package main

import (
	"strings"
	"testing"

	"github.com/volantvm/fledge/overlay/recipe"
)

// The recipe's list of compressions is the one list: build names an
// extension and --help a word for each, and nothing else.
func TestEveryCompressionHasAnExtensionAndHelp(t *testing.T) {
	for _, c := range recipe.Compressions {
		if extensions[c] == "" {
			t.Errorf("compression %s has no artifact extension", c)
		}
		if !strings.Contains(compressionHelp, c) {
			t.Errorf("--compression help does not mention %s: %q", c, compressionHelp)
		}
	}
	if len(extensions) != len(recipe.Compressions) {
		t.Errorf("extensions %v, recipe compressions %v: one list has more", extensions, recipe.Compressions)
	}
}
