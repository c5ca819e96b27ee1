package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
	"github.com/volantvm/fledge/overlay/recipe"
)

func newResetCmd() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "reset [PATH]",
		Short: "Discard the edits made through 'fledge mount' (all, or one path's)",
		Long: `reset discards the workspace's edits (.fledge/edits beside the recipe): all of
them, or those at and below the guest PATH, which then shows again what the
recipe's layers have there. A live mount shows the result within a few seconds.
An edit fledge cannot read (commands that read the workspace name it in a
warning) is dropped the same way.`,
		Example: `  fledge reset
  fledge reset /etc/motd
  fledge reset -c app/fledge.toml /usr/share`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := recipe.Load(config)
			if err != nil {
				return err
			}
			p := "/"
			if len(args) == 1 {
				if p, err = overlay.CleanPath(args[0]); err != nil {
					return fmt.Errorf("reset %s: %w; give an absolute guest path such as /etc/motd", args[0], err)
				}
			}
			e := edits.Open(edits.Dir(r.Dir))
			if p != "/" {
				if err := mustHoldEdits(e, p); err != nil {
					return err
				}
			}
			if err := e.Reset(p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "discarded the edits at %s\n", p)
			return nil
		},
	}
	cmd.Flags().StringVarP(&config, "config", "c", "fledge.toml", "recipe whose workspace to reset")
	return cmd
}

// mustHoldEdits fails when the layer has nothing at or below p, so a typo
// (or a path through a symlinked folder) is not reported as discarded.
func mustHoldEdits(e *edits.Edits, p string) error {
	ents, err := e.Entries()
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if ent.Path == p || strings.HasPrefix(ent.Path, p+"/") {
			return nil
		}
	}
	for _, pr := range e.Problems() {
		if pr.Path == p || strings.HasPrefix(pr.Path, p+"/") {
			return nil
		}
	}
	return fmt.Errorf("no edits at %s, nothing discarded: 'fledge diff' lists the edited paths (an edit below a symlinked folder such as /bin -> usr/bin is kept at the link's target)", p)
}

// warnUnreadableEdits reads the edits layer e, if any, and names, one
// line each, the edits it had to leave out, with the command that drops
// them: whatever the folder holds, the rest of the workspace stays usable.
func warnUnreadableEdits(cmd *cobra.Command, e *edits.Edits) {
	if e == nil {
		return
	}
	if _, err := e.Entries(); err != nil {
		return
	}
	for _, pr := range e.Problems() {
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge: warning:", pr)
	}
}
