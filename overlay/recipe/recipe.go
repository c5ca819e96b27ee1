// Package recipe loads and validates fledge.toml and assembles the layer
// stack it describes.
package recipe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/moby/buildkit/client"

	"github.com/volantvm/fledge/overlay"
)

// Defaults from DESIGN §1: the musl static BusyBox 1.35.0 the earlier
// fledge pinned, so recipes that name no BusyBox keep building the same.
const (
	DefaultBusyBoxURL    = "https://busybox.net/downloads/binaries/1.35.0-x86_64-linux-musl/busybox"
	DefaultBusyBoxSHA256 = "6e123e7f3202a8c1e9b1f94d8941580a25135382b99e8d3e34fb858bba311348"
)

// Mode is the init mode (see docs/init-modes.md).
type Mode string

const (
	ModeDefault Mode = "default" // our C init at /init, then /bin/kestrel
	ModeCustom  Mode = "custom"  // the recipe's init.path at /init
	ModeNone    Mode = "none"    // nothing added; a mapping provides /init
)

// Recipe is a validated fledge.toml. Host paths in it are absolute.
type Recipe struct {
	File     string  // absolute path of the recipe
	Dir      string  // the folder relative paths resolve against
	Version  string  `toml:"version"`
	Strategy string  `toml:"strategy"`
	Agent    *Agent  `toml:"agent"`
	Init     *Init   `toml:"init"`
	Source   Source  `toml:"source"`
	Kernel   *Kernel `toml:"kernel"`
	// Filesystem belongs to the oci_rootfs strategy of the earlier fledge;
	// it is decoded only so such recipes get the "not supported" message
	// instead of an unknown-key error.
	Filesystem map[string]any    `toml:"filesystem"`
	Output     Output            `toml:"output"`
	RawMap     map[string]string `toml:"mappings"`
	// Mappings are RawMap resolved, sorted by guest path.
	Mappings []overlay.Mapping `toml:"-"`

	// RootfsInit says what becomes of an /init the rootfs brings when no
	// init mode is chosen; recipes choose with [init], the direct form
	// with --init.
	RootfsInit RootfsInit `toml:"-"`
	// Flags, set by the direct form (fledge build ./Dockerfile), names the
	// flag that stands for a key ("source.busybox_url" → "--busybox-url"),
	// so that messages name what the user wrote.
	Flags map[string]string `toml:"-"`
}

// RootfsInit is the fate of a rootfs /init in the default mode.
type RootfsInit int

const (
	// ReplaceRootfsInit puts fledge's init over it (a recipe without [init]).
	ReplaceRootfsInit RootfsInit = iota
	// KeepRootfsInit makes it PID 1: the mode becomes none, no agent.
	KeepRootfsInit
	// RefuseRootfsInit makes it an error: an agent was asked for, and the
	// agent runs under fledge's init.
	RefuseRootfsInit
)

// Agent says where the Kestrel agent comes from.
type Agent struct {
	SourceStrategy string `toml:"source_strategy"` // release | local | http
	Version        string `toml:"version"`
	Path           string `toml:"path"`
	URL            string `toml:"url"`
	Checksum       string `toml:"checksum"`
}

// Init selects the init mode.
type Init struct {
	Path string `toml:"path"`
	None bool   `toml:"none"`
}

// Source holds the inputs of the layers below the init.
type Source struct {
	BusyBoxURL    string `toml:"busybox_url"`
	BusyBoxSHA256 string `toml:"busybox_sha256"`
	// BusyBox = false leaves BusyBox out (for images that bring their own
	// userland through the rootfs or mappings).
	BusyBox *bool `toml:"busybox"`
	// HostLibraries = false leaves out the libraries layer: the shared
	// libraries mapped programs need are then not taken from the host.
	HostLibraries *bool `toml:"host_libraries"`

	Dockerfile string            `toml:"dockerfile"`
	Context    string            `toml:"context"`
	Target     string            `toml:"target"`
	BuildArgs  map[string]string `toml:"build_args"`
	Image      string            `toml:"image"`
	// Contexts are BuildKit named contexts (name → value), e.g. a base
	// image from a local OCI layout: base = "oci-layout://./base@sha256:…".
	Contexts map[string]string `toml:"contexts"`
	// Initramfs is an existing initramfs whose entries are the bottom
	// image layer, in place of a rootfs (not with Dockerfile or Image).
	Initramfs string `toml:"initramfs"`
	// CacheFrom and CacheTo share BuildKit's build cache between machines:
	// imports and exports in BuildKit's syntax (type=registry,ref=…;
	// type=local,src=DIR or dest=DIR, relative to the recipe).
	CacheFrom []string `toml:"cache_from"`
	CacheTo   []string `toml:"cache_to"`
	// cacheFrom and cacheTo are CacheFrom and CacheTo parsed.
	cacheFrom, cacheTo []client.CacheOptionsEntry
}

// Kernel names a kernel's module tree and the modules the image loads.
type Kernel struct {
	// Path holds lib/modules/VERSION (and boot/vmlinuz-VERSION): a
	// kernel package unpacked with dpkg-deb -x, or "/" for the host's.
	Path string `toml:"path"`
	// Version chooses among several lib/modules/VERSION folders.
	Version string `toml:"version"`
	// Modules are names (virtio_net, virtio-net) or aliases.
	Modules []string `toml:"modules"`
}

// Output says how the recipe's artifact is written.
type Output struct {
	// Compression is one of Compressions; empty means the command's
	// default (gzip). A --compression flag overrides it.
	Compression string `toml:"compression"`
}

// Compressions are the values output.compression accepts.
var Compressions = []string{"gzip", "zstd", "xz", "lz4", "none"}

// Mode returns the init mode the recipe selects.
func (r *Recipe) Mode() Mode {
	switch {
	case r.Init == nil:
		return ModeDefault
	case r.Init.None:
		return ModeNone
	case r.Init.Path != "":
		return ModeCustom
	}
	return ModeDefault
}

// WantsBusyBox reports whether the BusyBox layer is part of the image.
func (r *Recipe) WantsBusyBox() bool { return r.Source.BusyBox == nil || *r.Source.BusyBox }

// WantsHostLibraries reports whether the libraries layer is part of the image.
func (r *Recipe) WantsHostLibraries() bool {
	return r.Source.HostLibraries == nil || *r.Source.HostLibraries
}

// HasRootfs reports whether a Dockerfile or image provides a rootfs layer.
func (r *Recipe) HasRootfs() bool { return r.Source.Dockerfile != "" || r.Source.Image != "" }

// HasBase reports whether an existing initramfs is the bottom image layer.
func (r *Recipe) HasBase() bool { return r.Source.Initramfs != "" }

// Load reads, decodes and validates a recipe. All problems found are
// reported together, each with the file and, where known, the line.
func Load(file string) (*Recipe, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("recipe %s is a folder; name the recipe file in it, such as %s", file, filepath.Join(file, "fledge.toml"))
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("recipe %s not found; pass one with -c or create fledge.toml (see examples/)", file)
		}
		return nil, fmt.Errorf("recipe: %w", err)
	}
	return Parse(abs, data)
}

// IsRecipe reports whether data reads as a recipe rather than, say, a
// Dockerfile: TOML with at least one key. A Dockerfile is never valid TOML
// ("FROM scratch" is a bare key without a value), so the content decides
// whatever the file is called.
func IsRecipe(data []byte) bool {
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	return err == nil && len(md.Keys()) > 0
}

// Parse decodes and validates recipe text; file names the recipe in
// messages and anchors relative paths.
func Parse(file string, data []byte) (*Recipe, error) {
	r := &Recipe{File: file, Dir: filepath.Dir(file)}
	md, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(r)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Problems: []Problem{{Line: pe.Position.Line, Msg: pe.Message}}}
		}
		if p, ok := decodeProblem(err); ok {
			return nil, &Error{File: file, Problems: []Problem{p}}
		}
		return nil, &Error{File: file, Problems: []Problem{{Msg: err.Error()}}}
	}
	v := &validator{r: r, lines: newLocator(data)}
	for _, k := range md.Undecoded() {
		v.unknownKey(k)
	}
	v.validate()
	if len(v.problems) > 0 {
		sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
		return nil, &Error{File: file, Problems: v.problems}
	}
	if r.Agent == nil && r.Mode() == ModeDefault {
		r.Agent = &Agent{SourceStrategy: "release", Version: "latest"}
	}
	if r.Source.BusyBoxURL == "" {
		r.Source.BusyBoxURL, r.Source.BusyBoxSHA256 = DefaultBusyBoxURL, DefaultBusyBoxSHA256
	}
	return r, nil
}

// Key names key as the user gives it: the recipe key, or its flag.
func (r *Recipe) Key(key string) string {
	if f, ok := r.Flags[key]; ok {
		return f
	}
	return key
}

// Setting says how the user sets key to value (TOML text): key = value in
// a recipe, --flag=value on the command line.
func (r *Recipe) Setting(key, value string) string {
	f, ok := r.Flags[key]
	if !ok {
		return key + " = " + value
	}
	if u, err := strconv.Unquote(value); err == nil {
		value = u
	}
	return f + "=" + value
}

// HostPath resolves a path from the recipe against the recipe's folder.
func (r *Recipe) HostPath(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(r.Dir, p)
}

// Problem is one thing wrong with a recipe.
type Problem struct {
	Line int // 0 when unknown
	Msg  string
}

// Error lists every problem found in a recipe.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Msg)
		}
	}
	return b.String()
}
