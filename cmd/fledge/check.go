package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/overlay/recipe"
)

func newCheckCmd() *cobra.Command {
	var (
		f        stackFlags
		asJSON   bool
		manifest string
	)
	cmd := &cobra.Command{
		Use:   "check [RECIPE|ARTIFACT]",
		Short: "Lint the image: init, libraries, interpreters, agent, symlinks, console, shadows",
		Long: `check applies fledge's lint rules to the merged image of a recipe or an
artifact. It follows every program the image runs: /init, /bin/kestrel in the
default init mode (for an artifact: when /init names it, as fledge's own init
does), the workload's entrypoint from the plugin manifest, and every executable
a mapping or an edit puts in the image: each must be an executable file, a
script's #! line must name an interpreter in the image (and end without the
carriage return of Windows line endings), and an ELF program needs its
interpreter and shared libraries in the image. The manifest is -m FILE (a
manifest.toml or a built NAME.manifest.json), else manifest.toml beside the
recipe, or NAME.manifest.json beside the artifact NAME.cpio.gz. A file that
replaces a folder of programs (a mapping "./x" = "/usr/bin") is an error. Every
finding has a rule id, a severity and a one-line fix (docs/workspace.md
describes each rule):

` + ruleList() + `
Exit status: 0 when there are no errors (warnings allowed), 2 when there is at
least one error, 1 when the image could not be read.`,
		Example: `  fledge check
  fledge check dist/app.cpio.gz
  fledge check dist/app.cpio.gz -m dist/app.manifest.json
  fledge check --json | jq '.[] | select(.severity == "error")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			t, v, err := openView(cmd.Context(), cmd, &f, arg)
			if err != nil {
				return err
			}
			defer t.Close()
			opts := inspect.CheckOptions{HostDirs: hostDirs(t), Manifest: checkedManifest(t, manifest), Layers: t.Stack.All()}
			if t.Recipe != nil {
				opts.WantKestrel = t.Recipe.Mode() == recipe.ModeDefault
			} else if opts.WantKestrel, err = inspect.ExpectsKestrel(v); err != nil {
				return err
			}
			if opts.Manifest != "" {
				m, err := readManifest(cmd, opts.Manifest)
				if err != nil {
					return err
				}
				if len(m.Workload.Entry) > 0 {
					opts.Entrypoint = m.Workload.Entry[0]
				}
			}
			found, err := inspect.Check(v, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name(), err)
			}
			if asJSON {
				if found == nil {
					found = []inspect.Finding{}
				}
				err = inspect.WriteJSON(cmd.OutOrStdout(), found)
			} else {
				err = inspect.WriteFindings(cmd.OutOrStdout(), found)
			}
			if err != nil {
				return err
			}
			if n := inspect.Errors(found); n > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("check: %s has %d error(s)", t.Name(), n)}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {rule, severity, path, message, fix}")
	cmd.Flags().StringVarP(&manifest, "manifest", "m", "", "manifest.toml or built NAME.manifest.json whose workload.entrypoint is followed too (default: manifest.toml beside a recipe, NAME.manifest.json beside an artifact NAME.cpio.gz, if present)")
	return cmd
}

// checkedManifest is the manifest whose entrypoint check follows: -m, else
// the one a build reads or writes beside the target (manifest.toml beside
// a recipe, NAME.manifest.json beside the artifact NAME.cpio.gz), if
// present; "" when there is none.
func checkedManifest(t *target, flag string) string {
	if flag != "" {
		return flag
	}
	p := ""
	if t.Recipe != nil {
		p = filepath.Join(t.Recipe.Dir, "manifest.toml")
	} else {
		for _, ext := range artifactExtensions {
			if base, ok := strings.CutSuffix(t.Artifact, ext); ok {
				p = base + ".manifest.json"
				break
			}
		}
	}
	if p == "" || !fileExists(p) {
		return ""
	}
	return p
}

func ruleList() string {
	width := 0
	for _, r := range inspect.Rules() {
		width = max(width, len(r.ID))
	}
	s := ""
	for _, r := range inspect.Rules() {
		s += fmt.Sprintf("  %-*s  %s\n", width, r.ID, r.Severity)
	}
	return s
}
