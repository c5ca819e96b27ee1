package inspect

import (
	"fmt"
	"io"
	"sort"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/ldso"
)

// Severity says whether a finding makes the image unusable (error) or
// merely suspicious (warning).
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one broken rule at one path.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Path     string   `json:"path"`
	Message  string   `json:"message"`
	// Fix is the rule's one-line fix: fledge's own text, never a name
	// from the image.
	Fix string `json:"fix"`
}

// CheckOptions carries what the view alone cannot tell.
type CheckOptions struct {
	// WantKestrel is set in the default init mode, where /init execs
	// /bin/kestrel.
	WantKestrel bool
	// HostDirs are host folders an absolute symlink must not point into,
	// in addition to the usual build places (the recipe's folder, say).
	HostDirs []string
	// Entrypoint is the workload's program (the plugin manifest's
	// workload.entrypoint[0]), followed like /init.
	Entrypoint string
	// Manifest names the file Entrypoint comes from, for messages.
	Manifest string
	// Layers are the layers the view was merged from, bottom first: what
	// a layer's file hides in place of a directory is read from the view
	// of the layers below it (rule shadowed-programs).
	Layers []overlay.Layer
}

type checker struct {
	v        *overlay.View
	opts     CheckOptions
	found    []Finding
	rule     *Rule
	elfCache map[*overlay.Node]*ldso.ELF
	closure  *ldso.Closure
	// scriptList is nil until scripts has run.
	scriptList *[]script
	// hiddenMap is nil until hidden has run; hiddenPaths then holds
	// every program it lists.
	hiddenMap   map[string]*hiding
	hiddenPaths map[string]bool
}

// Rule is one lint rule: an id for scripts and suppression lists, a
// severity and the one-line fix printed with every finding.
type Rule struct {
	ID       string
	Severity Severity
	Fix      string
	run      func(c *checker) error
}

// Rules returns the rules Check applies, in order.
func Rules() []Rule { return rules }

// Check applies every rule to v. Findings come in rule order, then by path.
func Check(v *overlay.View, opts CheckOptions) ([]Finding, error) {
	c := &checker{v: v, opts: opts, elfCache: map[*overlay.Node]*ldso.ELF{}}
	for i := range rules {
		c.rule = &rules[i]
		start := len(c.found)
		if err := c.rule.run(c); err != nil {
			return nil, fmt.Errorf("check %s: %w", c.rule.ID, err)
		}
		part := c.found[start:]
		sort.SliceStable(part, func(i, j int) bool { return part[i].Path < part[j].Path })
	}
	return c.found, nil
}

func (c *checker) report(path, format string, args ...any) {
	c.found = append(c.found, Finding{
		Rule: c.rule.ID, Severity: c.rule.Severity, Path: path,
		Message: fmt.Sprintf(format, args...), Fix: c.rule.Fix,
	})
}

// Errors counts the findings of severity error.
func Errors(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// WriteFindings prints findings for people: one line each, then its fix;
// paths, and the names messages quote, are escaped (see Escape). A fix is
// the rule's own text, never a name from the image, and is printed as
// written: the backslash of "sed -i 's/\r$//'" must stay one to be pasted.
func WriteFindings(w io.Writer, fs []Finding) error {
	for _, f := range fs {
		if _, err := fmt.Fprintf(w, "%s %s: %s: %s\n  fix: %s\n", f.Severity, f.Rule, Escape(f.Path), Escape(f.Message), f.Fix); err != nil {
			return err
		}
	}
	errs := Errors(fs)
	_, err := fmt.Fprintf(w, "%d errors, %d warnings\n", errs, len(fs)-errs)
	return err
}
