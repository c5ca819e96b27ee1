package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/moby/buildkit/version"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// cacheKey hashes everything the build reads from the host and every option
// that changes its result: the Dockerfile, the context files the build can
// see (names, modes, contents; .dockerignore honoured), target, build args,
// image, named contexts, the export epoch and the BuildKit version. What the
// build fetches from the network (a base image tag, a download in RUN) is
// not an input the key can see.
func cacheKey(in input, epoch int64) (string, error) {
	h := sha256.New()
	field := func(k, v string) { fmt.Fprintf(h, "%s %d:%s\n", k, len(v), v) }
	field("format", "fledge-rootfs-1")
	field("buildkit", version.Version)
	field("epoch", fmt.Sprint(epoch))
	field("dockerfile", string(in.dockerfile))
	field("filename", in.filename)
	field("target", in.target)
	field("image", in.image)
	args := make([]string, 0, len(in.args))
	for k := range in.args {
		args = append(args, k)
	}
	sort.Strings(args)
	for _, k := range args {
		field("arg "+k, in.args[k])
	}
	if in.context != "" {
		if err := hashTree(h, "context", in.context); err != nil {
			return "", err
		}
	}
	for _, name := range sortedNames(in.named) {
		nc := in.named[name]
		field("named "+name, fmt.Sprint(nc.kind, nc.value, nc.digest))
		if nc.kind == localDir {
			if err := hashTree(h, "named "+name, nc.dir); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree hashes a build context the way the build sees it. BuildKit
// resolves a root given as a symlink and sends what the directory holds;
// WalkDir would stop at the link, so it is resolved here too.
func hashTree(h hash.Hash, label, root string) error {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("rootfs: %s: %w", label, err)
	}
	pm, err := dockerignore(root)
	if err != nil {
		return fmt.Errorf("rootfs: %s: %w", label, err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if pm != nil {
			skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
			if err != nil {
				return err
			}
			if skip {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		return hashFile(h, p, rel, d)
	})
	if err != nil {
		return fmt.Errorf("rootfs: hashing %s %s: %w", label, root, err)
	}
	return nil
}

func hashFile(h hash.Hash, p, rel string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file %d:%s %o", len(rel), rel, fi.Mode())
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, " -> %d:%s", len(t), t)
	case fi.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fh := sha256.New()
		if _, err := io.Copy(fh, f); err != nil {
			return err
		}
		fmt.Fprintf(h, " %x", fh.Sum(nil))
	}
	_, err = io.WriteString(h, "\n")
	return err
}

// dockerignore reads root/.dockerignore, or returns nil when there is none.
func dockerignore(root string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return patternmatcher.New(patterns)
}
