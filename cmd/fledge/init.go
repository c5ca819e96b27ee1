package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/recipe"
)

type initFlags struct {
	agent   string
	busybox string
}

func newInitCmd() *cobra.Command {
	var f initFlags
	cmd := &cobra.Command{
		Use:   "init [PROGRAM | DOCKERFILE]",
		Short: "Write a starting fledge.toml and manifest.toml in the current folder",
		Long: `init writes fledge.toml and manifest.toml in the current folder, ready for
'fledge build' and 'fledge check':

  PROGRAM     an executable (a static binary, or a script with its
              interpreter in the image): mapped to /usr/bin/NAME, and the
              manifest's workload entrypoint runs it;
  DOCKERFILE  a file whose first instruction is FROM or ARG: the rootfs is
              built from it (the Dockerfile form, see docs/dockerfile.md);
  nothing     a recipe with the default init and agent, its mappings and
              rootfs left as comments to fill in.

The image uses the default init mode: fledge's init, then the Kestrel agent.
--agent PATH takes a local Kestrel binary, --agent VERSION a release of
volantvm/volant (a tag such as v0.1.0, or latest); without it, the latest
release. --busybox-url puts another BusyBox in the recipe (a path or URL;
default: the pinned BusyBox 1.35.0, downloaded on the first build).

init never overwrites: when fledge.toml or manifest.toml exists, it names the
file and writes nothing. Paths inside the current folder are written relative
to it, others absolute.`,
		Example: `  fledge init ./myapp                    # map ./myapp to /usr/bin/myapp
  fledge init --agent ./kestrel ./hello  # a local agent instead of the latest release
  fledge init --agent v0.1.0 ./Dockerfile
  fledge init                            # a commented recipe to fill in
  fledge init ./hello --busybox-url /usr/bin/busybox   # Debian's busybox-static, offline`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			return runInit(cmd, &f, arg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.agent, "agent", "", "Kestrel agent: a local PATH, or a release VERSION (v0.1.0, latest); default: the latest release")
	fl.StringVar(&f.busybox, "busybox-url", "", "BusyBox for the recipe: a PATH or an http(s)/file URL (default: the pinned BusyBox 1.35.0)")
	return cmd
}

// initFiles are the two files init writes, in the order it writes them.
var initFiles = []string{"fledge.toml", "manifest.toml"}

func runInit(cmd *cobra.Command, f *initFlags, arg string) error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("the current folder: %w", err)
	}
	for _, name := range initFiles {
		if _, err := os.Lstat(filepath.Join(wd, name)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %s already exists in %s; init never overwrites: move it away, or edit it instead", name, wd)
		}
	}
	p := &initPlan{dir: wd, name: filepath.Base(wd)}
	if err := p.agentFrom(f.agent); err != nil {
		return err
	}
	if err := p.busyBoxFrom(f.busybox); err != nil {
		return err
	}
	if err := p.subject(arg); err != nil {
		return err
	}
	texts := [][]byte{p.recipe(), p.manifest()}
	// What is written must load as written: a name the recipe cannot hold
	// is refused here, before any file exists.
	if _, err := recipe.Parse(filepath.Join(wd, "fledge.toml"), texts[0]); err != nil {
		return fmt.Errorf("init: the recipe for %s would not load, so nothing was written: %w", arg, err)
	}
	for i, name := range initFiles {
		if err := createNew(filepath.Join(wd, name), texts[i]); err != nil {
			for _, done := range initFiles[:i] {
				os.Remove(filepath.Join(wd, done))
			}
			return err
		}
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "fledge: wrote fledge.toml and manifest.toml in %s\n", wd)
	if p.mapping != "" {
		fmt.Fprintf(out, "fledge: %s runs as %s; next: fledge build, then fledge check\n", p.mapping, p.guest)
	} else {
		fmt.Fprintln(out, "fledge: next: fledge build, then fledge check")
	}
	return nil
}

// createNew writes a file that must not exist yet: O_EXCL, so a file made
// meanwhile is never overwritten either.
func createNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("init: %s already exists; init never overwrites: move it away, or edit it instead", path)
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("init: writing %s: %w", path, err)
	}
	return nil
}

// initPlan is what init has found out, in the recipe's words.
type initPlan struct {
	dir, name  string // the current folder and its name
	agentLocal string // recipe path of a local agent
	agentTag   string // release tag when there is no local agent
	busybox    string // source.busybox_url, or "" for the default
	mapping    string // recipe path of the program
	guest      string // where the program lands
	dockerfile string // recipe path of the Dockerfile
}

// releaseTag is what a release VERSION looks like: latest, or a tag such as
// v0.1.0 or 1.2.3-rc1.
var releaseTag = regexp.MustCompile(`^(latest|v?[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.-]+)?)$`)

func (p *initPlan) agentFrom(v string) error {
	switch {
	case v == "":
		p.agentTag = "latest"
		return nil
	case !strings.Contains(v, "/") && !fileExists(v):
		if !releaseTag.MatchString(v) {
			return fmt.Errorf("--agent %s: no such file here, and not a release version (latest, v0.1.0); give the path of a Kestrel binary (./kestrel) or a release tag", v)
		}
		p.agentTag = v
		return nil
	}
	rel, err := p.hostFile("--agent", v)
	p.agentLocal = rel
	return err
}

func (p *initPlan) busyBoxFrom(v string) error {
	if v == "" || strings.Contains(v, "://") {
		p.busybox = v
		return nil
	}
	rel, err := p.hostFile("--busybox-url", v)
	p.busybox = rel
	return err
}

// subject reads the argument: a program, a Dockerfile, or nothing.
func (p *initPlan) subject(arg string) error {
	if arg == "" {
		return nil
	}
	rel, err := p.hostFile("init", arg)
	if err != nil {
		return err
	}
	switch kind, err := fileKind(arg); {
	case err != nil:
		return fmt.Errorf("init %s: %w", arg, err)
	case kind == "program":
		p.mapping, p.name = rel, filepath.Base(arg)
		p.guest = "/usr/bin/" + p.name
	case kind == "dockerfile":
		p.dockerfile = rel
	default:
		return fmt.Errorf("init %s: neither a program (no execute permission) nor a Dockerfile (its first instruction is not FROM or ARG); chmod +x a program, or name a Dockerfile", arg)
	}
	return nil
}

// hostFile checks that v names a regular file and returns how the recipe
// names it: relative to the current folder when inside it, else absolute.
func (p *initPlan) hostFile(what, v string) (string, error) {
	abs, err := hostInput(what, v, false)
	if err != nil {
		return "", err
	}
	if !overlay.Within(p.dir, abs) {
		return abs, nil
	}
	rel, err := filepath.Rel(p.dir, abs)
	if err != nil {
		return "", err
	}
	return "./" + filepath.ToSlash(rel), nil
}

// dockerInstruction is the first instruction of a Dockerfile: FROM, or ARG
// before it.
var dockerInstruction = regexp.MustCompile(`(?i)^(from|arg)\s`)

// fileKind tells a program (executable: ELF or a script) from a Dockerfile
// (text whose first instruction is FROM or ARG); anything else is "".
func fileKind(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o111 != 0 {
		return "program", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	for line := range strings.SplitSeq(string(head[:n]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if dockerInstruction.MatchString(line + " ") {
			return "dockerfile", nil
		}
		break
	}
	return "", nil
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]string{"v": s}); err != nil {
		panic(err) // a map of one string always encodes
	}
	return strings.TrimSpace(strings.TrimPrefix(b.String(), "v = "))
}

// recipe is the fledge.toml text.
func (p *initPlan) recipe() []byte {
	var b strings.Builder
	b.WriteString(`# fledge recipe, written by fledge init; every key: docs/recipe.md.
# fledge build writes plugin.cpio.gz and plugin.manifest.json; fledge check lints them.
version = "1"
strategy = "initramfs"

# The default init mode: fledge's init mounts /proc, /sys, /dev, /tmp and /run,
# then runs the Kestrel agent at /bin/kestrel.
[agent]
`)
	if p.agentLocal != "" {
		fmt.Fprintf(&b, "source_strategy = \"local\"\npath = %s\n", quote(p.agentLocal))
	} else {
		fmt.Fprintf(&b, "source_strategy = \"release\"\nversion = %s   # a tag of volantvm/volant, or \"latest\"\n", quote(p.agentTag))
	}
	b.WriteString("\n[source]\n")
	if p.busybox != "" {
		fmt.Fprintf(&b, "busybox_url = %s\n", quote(p.busybox))
	} else {
		b.WriteString("# busybox_url = \"/usr/bin/busybox\"   # default: the pinned BusyBox 1.35.0, downloaded once\n")
	}
	if p.dockerfile != "" {
		fmt.Fprintf(&b, "dockerfile = %s   # the rootfs, built with BuildKit (docs/dockerfile.md)\n", quote(p.dockerfile))
	} else {
		b.WriteString("# dockerfile = \"./Dockerfile\"   # a rootfs built with BuildKit (docs/dockerfile.md)\n")
	}
	b.WriteString("\n[mappings]                 # host path (relative to this file) -> guest path\n")
	if p.mapping != "" {
		fmt.Fprintf(&b, "%s = %s\n", quote(p.mapping), quote(p.guest))
	} else {
		b.WriteString("# \"./myapp\" = \"/usr/bin/myapp\"\n")
	}
	return []byte(b.String())
}

// manifest is the manifest.toml text.
func (p *initPlan) manifest() []byte {
	var b strings.Builder
	b.WriteString(`# Runtime defaults of the plugin, written by fledge init; fledge build merges
# them into the manifest JSON and adds the initramfs URL and checksum
# (docs/recipe.md, manifest.toml).
schema_version = "v1"
`)
	fmt.Fprintf(&b, "name = %s\nversion = \"0.1.0\"\nruntime = %s\n", quote(p.name), quote(p.name))
	b.WriteString(`
[resources]
cpu_cores = 1
memory_mb = 256

[workload]
type = "http"
base_url = "http://127.0.0.1:8080"   # where the workload listens
`)
	if p.guest != "" {
		fmt.Fprintf(&b, "entrypoint = [%s]\n", quote(p.guest))
	} else {
		b.WriteString("# entrypoint = [\"/usr/bin/myapp\"]   # default: the first mapping into a bin folder, else /init\n")
	}
	return []byte(b.String())
}
