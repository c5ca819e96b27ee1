package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/overlay"
)

func newDiffCmd() *cobra.Command {
	var (
		f       stackFlags
		asJSON  bool
		ws      string
		changes []overlay.Change
	)
	cmd := &cobra.Command{
		Use:   "diff [ARTIFACT | A B]",
		Short: "List the workspace's edits, or compare two artifacts or recipes",
		Long: `With no arguments, diff lists the edits made through 'fledge mount' to the
recipe's image: added, changed, deleted, and mode (permissions or owner only).
With one, those made to that artifact (or recipe); an artifact's edits are
kept in its workspace (see 'fledge mount --help'; --workspace names another).

With two arguments, each an artifact (a cpio, plain or in any compression
the kernel reads) or a recipe, it compares their images: added, removed,
changed (type, content hash, link target, device numbers, mode, owner), one
line per path.

Like diff(1), it exits 1 when there are differences. When there are none,
stdout stays empty (so 'fledge diff | wc -l' counts changes) and stderr says
"no edits" or "no differences".`,
		Example: `  fledge diff
  fledge diff initrd.img                # the edits made to an artifact
  fledge diff old.cpio.gz new.cpio.gz
  fledge diff fledge.toml dist/app.cpio.gz --json`,
		Args: argCounts(0, 1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if len(args) < 2 {
				changes, err = workspaceChanges(cmd, &f, args, ws)
			} else {
				changes, err = compareTargets(cmd, &f, args[0], args[1])
			}
			if err != nil {
				return err
			}
			if err := printChanges(cmd, changes, asJSON); err != nil {
				return err
			}
			if len(changes) > 0 {
				return &exitError{code: 1}
			}
			if !asJSON {
				fmt.Fprintln(cmd.ErrOrStderr(), nothingChanged(args, f.config))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {path, kind, detail}")
	cmd.Flags().StringVar(&ws, "workspace", "", workspaceHelp)
	return cmd
}

// nothingChanged is the note for a diff that found nothing: the
// workspace's edits of recipe, or two images compared.
func nothingChanged(args []string, recipe string) string {
	switch len(args) {
	case 0:
		return "fledge: no edits in the workspace of " + recipe
	case 1:
		return "fledge: no edits in the workspace of " + args[0]
	}
	return fmt.Sprintf("fledge: no differences between %s and %s", args[0], args[1])
}

// workspaceChanges compares the edits of the recipe's or artifact's
// workspace with the layers below.
func workspaceChanges(cmd *cobra.Command, f *stackFlags, args []string, ws string) ([]overlay.Change, error) {
	arg := ""
	if len(args) == 1 {
		arg = args[0]
	}
	t, err := f.openWorkspace(cmd.Context(), cmd, arg, ws)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return editChanges(t.Stack)
}

// editChanges lists what the edits change in the layers below them; no
// edits have none.
func editChanges(st layers) ([]overlay.Change, error) {
	if st.Edits == nil {
		return nil, nil
	}
	v, err := st.Lower.View()
	if err != nil {
		return nil, err
	}
	return st.Edits.Changes(v)
}

// compareTargets diffs the images of two artifacts or recipes.
func compareTargets(cmd *cobra.Command, f *stackFlags, a, b string) ([]overlay.Change, error) {
	var views [2]*overlay.View
	for i, arg := range []string{a, b} {
		t, err := f.open(cmd.Context(), cmd, arg)
		if err != nil {
			return nil, err
		}
		defer t.Close()
		if views[i], err = t.Stack.View(); err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
	}
	return overlay.Diff(views[0], views[1])
}

func printChanges(cmd *cobra.Command, changes []overlay.Change, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		if changes == nil {
			changes = []overlay.Change{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(changes)
	}
	for _, c := range changes {
		// Names are escaped for the terminal, one change a line; JSON
		// keeps them exact.
		line := fmt.Sprintf("%-8s %s", c.Kind, inspect.Escape(c.Path))
		if c.Detail != "" {
			line += "  (" + inspect.Escape(c.Detail) + ")"
		}
		fmt.Fprintln(out, line)
	}
	return nil
}
