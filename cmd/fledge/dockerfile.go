package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/recipe"
)

// dockerfileFlags are the flags of the direct form, `fledge build
// ./Dockerfile`, which builds without a recipe file.
type dockerfileFlags struct {
	context       string
	target        string
	buildArgs     []string
	buildContexts []string
	initramfs     bool
	agent         string
	busyboxURL    string
	busyboxSHA256 string
	busybox       bool
	init          string
}

func (d *dockerfileFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&d.context, "context", "", "with DOCKERFILE: the build context folder (default: the Dockerfile's folder)")
	fl.StringVar(&d.target, "target", "", "with DOCKERFILE: the stage to build (default: the last)")
	fl.StringArrayVar(&d.buildArgs, "build-arg", nil, "with DOCKERFILE: K=V for an ARG (repeatable); BUILDKIT_SYNTAX=IMAGE lets a '# syntax=' frontend be pulled")
	fl.StringArrayVar(&d.buildContexts, "build-context", nil, "with DOCKERFILE: NAME=VALUE named context (repeatable): a folder, oci-layout://DIR@sha256:..., docker-image://REF")
	fl.BoolVar(&d.initramfs, "output-initramfs", false, "with DOCKERFILE: write an initramfs (the only output supported)")
	fl.StringVar(&d.agent, "agent", "", "with DOCKERFILE: Kestrel agent, a local PATH or an http(s)/file URL (default: the latest release)")
	fl.StringVar(&d.busyboxURL, "busybox-url", "", "with DOCKERFILE: BusyBox to add, an http(s) or file:// URL or a PATH (default: the pinned BusyBox 1.35.0)")
	fl.StringVar(&d.busyboxSHA256, "busybox-sha256", "", "with DOCKERFILE: sha256 of --busybox-url")
	fl.BoolVar(&d.busybox, "busybox", true, "with DOCKERFILE: add BusyBox; --busybox=false leaves it out")
	fl.StringVar(&d.init, "init", "", "with DOCKERFILE: init mode: default (fledge's init, then the Kestrel agent), none (the rootfs's /init is PID 1) or the PATH of your init (default: none when the rootfs has /init, else default)")
}

// recipeKeys names, for each flag of the direct form, where a recipe says
// the same thing.
var recipeKeys = []struct{ flag, key string }{
	{"context", "source.context"}, {"target", "source.target"},
	{"build-arg", "source.build_args"}, {"build-context", "source.contexts"},
	{"agent", "[agent]"}, {"busybox-url", "source.busybox_url"}, {"busybox-sha256", "source.busybox_sha256"},
	{"busybox", "source.busybox"}, {"init", "[init]"},
}

// keyFlags names the flag that stands for each recipe key the direct form
// sets, so that messages about the build name the flag (recipe.Recipe.Flags).
var keyFlags = map[string]string{
	"source.busybox_url": "--busybox-url", "source.busybox_sha256": "--busybox-sha256", "source.busybox": "--busybox",
	"agent": "--agent", "agent.url": "--agent", "agent.path": "--agent", "init": "--init", "init.path": "--init",
}

// flagWords rewrites a recipe problem found in the flags into their words.
// Longer keys come first, as a Replacer tries them in order; the bare table
// names stay, as "agent" and "init" are also plain words.
var flagWords = strings.NewReplacer(
	"source.busybox = false", "--busybox=false",
	"source.busybox_sha256", "--busybox-sha256",
	"source.busybox_url", "--busybox-url",
	"agent.path", "--agent", "agent.url", "--agent", "init.path", "--init",
)

// needDockerfile refuses the direct form's flags in a recipe build, where
// they would be silently ignored (--output-initramfs is what a recipe
// build does anyway, so it passes).
func needDockerfile(cmd *cobra.Command) error {
	for _, k := range recipeKeys {
		if cmd.Flags().Changed(k.flag) {
			return fmt.Errorf("--%s applies only with a DOCKERFILE argument (fledge build ./Dockerfile --output-initramfs); in a recipe build, set %s in fledge.toml instead", k.flag, k.key)
		}
	}
	return nil
}

// runDockerfileBuild is the direct form: the flags become a recipe whose
// folder is the build context, so NAME, the manifest's name and a
// manifest.toml come from there, and the recipe pipeline does the rest.
func runDockerfileBuild(ctx context.Context, cmd *cobra.Command, f *buildFlags, d *dockerfileFlags, dockerfile string) error {
	if !d.initramfs {
		return fmt.Errorf("build %s: only initramfs output is supported; add --output-initramfs", dockerfile)
	}
	if cmd.Flags().Changed("config") {
		return fmt.Errorf("build %s: -c names a recipe, but a Dockerfile was given; use one of them", dockerfile)
	}
	r, err := d.recipe(dockerfile)
	if err != nil {
		return err
	}
	if f.output == "" {
		if f.output, err = defaultDirectOutput(r.Dir); err != nil {
			return err
		}
	}
	return buildRecipe(ctx, cmd, f, r)
}

// defaultDirectOutput is NAME when -o is not given: the context folder's
// name, in the current folder, unless that is inside the context; then in
// the folder above the context. An artifact written into the context would
// change it, and the next build would miss the rootfs cache.
func defaultDirectOutput(ctxDir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("the current folder: %w", err)
	}
	dir := wd
	if overlay.Within(ctxDir, wd) {
		dir = filepath.Dir(ctxDir)
	}
	return filepath.Join(dir, filepath.Base(ctxDir)), nil
}

// recipe writes the flags as fledge.toml text and parses it, so the direct
// form gets exactly the recipe's validation and defaults.
func (d *dockerfileFlags) recipe(dockerfile string) (*recipe.Recipe, error) {
	df, err := hostInput("DOCKERFILE", dockerfile, false)
	if err != nil {
		return nil, err
	}
	ctxDir := filepath.Dir(df)
	if d.context != "" {
		if ctxDir, err = hostInput("--context", d.context, true); err != nil {
			return nil, err
		}
	}
	src := map[string]any{"dockerfile": df, "context": ctxDir}
	if d.target != "" {
		src["target"] = d.target
	}
	if src["build_args"], err = keyValues("--build-arg", d.buildArgs); err != nil {
		return nil, err
	}
	contexts, err := keyValues("--build-context", d.buildContexts)
	if err != nil {
		return nil, err
	}
	for name, val := range contexts {
		if contexts[name], err = absContext(val); err != nil {
			return nil, err
		}
	}
	src["contexts"] = contexts
	if d.busyboxURL != "" || d.busyboxSHA256 != "" {
		bb := d.busyboxURL
		if bb != "" && !strings.Contains(bb, "://") {
			if bb, err = hostInput("--busybox-url", bb, false); err != nil {
				return nil, err
			}
		}
		src["busybox_url"], src["busybox_sha256"] = bb, d.busyboxSHA256
	}
	if !d.busybox {
		src["busybox"] = false
	}
	doc := map[string]any{"version": "1", "strategy": "initramfs", "source": src}
	agent, err := d.agentTable()
	if err != nil {
		return nil, err
	}
	if agent != nil {
		doc["agent"] = agent
	}
	initMode, err := d.initTable()
	if err != nil {
		return nil, err
	}
	if initMode != nil {
		doc["init"] = initMode
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, fmt.Errorf("direct build: %w", err)
	}
	r, err := recipe.Parse(filepath.Join(ctxDir, "fledge.toml"), buf.Bytes())
	var re *recipe.Error
	if errors.As(err, &re) {
		msgs := make([]string, len(re.Problems))
		for i, p := range re.Problems {
			msgs[i] = flagWords.Replace(p.Msg)
		}
		return nil, fmt.Errorf("build %s: %s", dockerfile, strings.Join(msgs, "; "))
	}
	if err != nil {
		return nil, err
	}
	r.Flags = keyFlags
	switch {
	case d.init != "":
		r.RootfsInit = recipe.ReplaceRootfsInit
	case d.agent != "":
		r.RootfsInit = recipe.RefuseRootfsInit
	default:
		r.RootfsInit = recipe.KeepRootfsInit
	}
	return r, nil
}

// agentTable is the [agent] table --agent stands for, or nil without it.
func (d *dockerfileFlags) agentTable() (map[string]any, error) {
	switch {
	case d.agent == "":
		return nil, nil
	case d.init != "" && d.init != "default":
		return nil, fmt.Errorf("--agent adds the Kestrel agent, which runs under fledge's init, but --init %s makes your program PID 1; leave out one of them", d.init)
	case strings.Contains(d.agent, "://"):
		return map[string]any{"source_strategy": "http", "url": d.agent}, nil
	}
	p, err := hostInput("--agent", d.agent, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"source_strategy": "local", "path": p}, nil
}

// initTable is the [init] table --init stands for, or nil for the default
// mode.
func (d *dockerfileFlags) initTable() (map[string]any, error) {
	switch d.init {
	case "", "default":
		return nil, nil
	case "none":
		return map[string]any{"none": true}, nil
	}
	p, err := hostInput("--init", d.init, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"path": p}, nil
}

// hostInput checks a path given on the command line: an existing folder
// (dir) or regular file, named by what (a flag or argument) when it is not.
// It returns the path made absolute.
func hostInput(what, p string, dir bool) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, p, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil && errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s %s does not exist", what, p)
	case err != nil:
		return "", fmt.Errorf("%s %s: %w", what, p, err)
	case dir && !fi.IsDir():
		return "", fmt.Errorf("%s %s is not a folder", what, p)
	case !dir && fi.IsDir():
		return "", fmt.Errorf("%s %s is a folder; expected a file", what, p)
	case !dir && !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s %s is not a regular file", what, p)
	}
	return abs, nil
}

// absContext makes the host path of a named context (a folder, or the
// folder of oci-layout://DIR@sha256:…) absolute against the working
// directory, as the shell user means it; other sources (docker-image://,
// git, https) are BuildKit's to resolve.
func absContext(val string) (string, error) {
	const oci = "oci-layout://"
	dir, isOCI := strings.CutPrefix(val, oci)
	if !isOCI && strings.Contains(val, "://") {
		return val, nil
	}
	suffix := ""
	if i := strings.LastIndex(dir, "@"); isOCI && i >= 0 {
		dir, suffix = dir[:i], dir[i:]
	}
	if dir == "" {
		return val, nil // the recipe check reports the empty path
	}
	abs, err := hostInput("--build-context", dir, true)
	if err != nil {
		return "", err
	}
	if isOCI {
		return oci + abs + suffix, nil
	}
	return abs, nil
}

// keyValues parses repeated K=V flags.
func keyValues(flag string, list []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: expected NAME=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}
