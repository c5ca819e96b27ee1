package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
	"github.com/volantvm/fledge/overlay/recipe"
)

func newResetCmd() *cobra.Command {
	var config, ws string
	cmd := &cobra.Command{
		Use:   "reset [ARTIFACT] [PATH]",
		Short: "Discard the edits made through 'fledge mount' (all, or one path's)",
		Long: `reset discards the workspace's edits (.fledge/edits beside the recipe, or the
workspace of ARTIFACT: see 'fledge mount --help'): all of them, or those at
and below the guest PATH, which then shows again what the recipe's layers
(or the artifact) have there. A live mount shows the result within a few
seconds. An edit fledge cannot read (commands that read the workspace name it
in a warning) is dropped the same way.`,
		Example: `  fledge reset
  fledge reset /etc/motd
  fledge reset -c app/fledge.toml /usr/share
  fledge reset initrd.img               # all edits of an artifact
  fledge reset initrd.img /scripts/init-top`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			art := ""
			if len(args) == 2 || len(args) == 1 && isArtifact(args[0]) {
				art, args = args[0], args[1:]
			}
			p := "/"
			var err error
			if len(args) == 1 {
				if p, err = overlay.CleanPath(args[0]); err != nil {
					return fmt.Errorf("reset %s: %w; give an absolute guest path such as /etc/motd", args[0], err)
				}
			}
			e, err := resetEdits(config, art, ws)
			if err != nil {
				return err
			}
			if p != "/" {
				if err := mustHoldEdits(e, p); err != nil {
					return err
				}
			}
			if err := e.Reset(p); err != nil {
				return err
			}
			if art != "" && p == "/" {
				// The workspace now starts over from the artifact as it is.
				sum, err := fileSHA256(art)
				if err == nil {
					err = writeRecord(filepath.Dir(e.Dir()), art, sum)
				}
				if err != nil {
					return fmt.Errorf("artifact %s: %w", art, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "discarded the edits at %s\n", p)
			return nil
		},
	}
	cmd.Flags().StringVarP(&config, "config", "c", "fledge.toml", "recipe whose workspace to reset")
	cmd.Flags().StringVar(&ws, "workspace", "", workspaceHelp)
	return cmd
}

// resetEdits opens the edits to reset: those of the artifact art in the
// workspace ws (or its default one), or else of the recipe config.
func resetEdits(config, art, ws string) (*edits.Edits, error) {
	if art == "" {
		if ws != "" {
			return nil, fmt.Errorf("--workspace %s: name the artifact whose workspace it is (fledge reset ARTIFACT --workspace DIR); a recipe's workspace is always .fledge beside it", ws)
		}
		r, err := recipe.Load(config)
		if err != nil {
			return nil, err
		}
		return edits.Open(edits.Dir(r.Dir)), nil
	}
	dir, err := artifactWorkspace(art, ws)
	if err != nil {
		return nil, err
	}
	return edits.Open(filepath.Join(dir, "edits")), nil
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
