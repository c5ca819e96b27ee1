package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay/edits"
)

// An artifact's workspace is a folder of its own, since the artifact's
// folder may be anything (/boot, a download folder, read-only media): by
// default $XDG_STATE_HOME/fledge/artifacts/NAME-HASH (~/.local/state when
// XDG_STATE_HOME is unset), HASH naming the artifact's absolute path with
// symlinks resolved, so a workspace belongs to one file wherever it is
// named from. --workspace DIR chooses another. It holds what a recipe's
// .fledge holds (edits/, mount.lock) and the file artifactRecord, which
// names the artifact and the sha256 its edits were made over.
const artifactRecord = "artifact"

const workspaceHelp = "the artifact's workspace, where its edits are kept (default\n$XDG_STATE_HOME/fledge/artifacts/NAME-HASH, HASH of the artifact's absolute path)"

// artifactWorkspace returns the workspace folder of the artifact at path:
// dir if given, else the default one.
func artifactWorkspace(path, dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	state := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(state) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the workspace of %s: %w; set XDG_STATE_HOME or HOME, or give --workspace DIR", path, err)
		}
		state = filepath.Join(home, ".local", "state")
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(state, "fledge", "artifacts", filepath.Base(abs)+"-"+hex.EncodeToString(sum[:8])), nil
}

// artifactSum is the sha256 of t's artifact: the one its open read, or
// else read now.
func (t *target) artifactSum() (string, error) {
	if t.art != nil && t.art.SHA256() != "" {
		return t.art.SHA256(), nil
	}
	sum, err := fileSHA256(t.Artifact)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", t.Artifact, err)
	}
	return sum, nil
}

// artifactEdits opens the edits of t's artifact kept in the workspace
// ws, and says on stderr when the artifact is not the file they were made
// over.
func artifactEdits(cmd *cobra.Command, t *target, ws string) (*edits.Edits, error) {
	path := t.Artifact
	e := edits.Open(filepath.Join(ws, "edits"))
	ents, err := e.Entries()
	if err != nil {
		return nil, err
	}
	if len(ents) == 0 && len(e.Problems()) == 0 {
		return e, nil
	}
	sum, err := t.artifactSum()
	if err != nil {
		return nil, err
	}
	was, err := readRecord(ws)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return e, writeRecord(ws, path, sum)
	case err != nil:
		return nil, err
	case was != sum:
		fmt.Fprintf(cmd.ErrOrStderr(), "fledge: warning: %s changed since its edits were made (sha256 %.12s then, %.12s now); the edits in %s now apply over the new content: 'fledge diff %s' lists them, 'fledge reset %s' drops them\n",
			path, was, sum, ws, path, path)
	}
	return e, nil
}

// recordArtifact notes in t's workspace that its edits are made over t's
// artifact as it is now; mount and mknod call it when they take the
// workspace.
func recordArtifact(t *target) error {
	if _, err := readRecord(t.Workspace); err == nil {
		return nil
	}
	sum, err := t.artifactSum()
	if err != nil {
		return err
	}
	return writeRecord(t.Workspace, t.Artifact, sum)
}

// readRecord returns the sha256 the record in ws names.
func readRecord(ws string) (string, error) {
	b, err := os.ReadFile(filepath.Join(ws, artifactRecord))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "sha256 "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: expected a line \"sha256 HEX\", found none; delete the file and fledge writes it again", filepath.Join(ws, artifactRecord))
}

func writeRecord(ws, path, sum string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return writeAtomic(filepath.Join(ws, artifactRecord), func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "path %s\nsha256 %s\n", abs, sum)
		return err
	})
}
