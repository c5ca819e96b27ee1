package recipe

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/rootfs"
)

type validator struct {
	r        *Recipe
	lines    *locator
	problems []Problem
}

func (v *validator) add(key []string, format string, args ...any) {
	v.problems = append(v.problems, Problem{Line: v.lines.line(key), Msg: fmt.Sprintf(format, args...)})
}

// knownKeys lists the keys each table accepts, for "did you mean" hints.
var knownKeys = map[string][]string{
	"":           {"version", "strategy", "agent", "init", "source", "kernel", "filesystem", "output", "mappings"},
	"kernel":     {"path", "version", "modules"},
	"output":     {"compression"},
	"agent":      {"source_strategy", "version", "path", "url", "checksum"},
	"init":       {"path", "none"},
	"source":     {"busybox_url", "busybox_sha256", "busybox", "host_libraries", "dockerfile", "context", "target", "build_args", "image", "contexts", "initramfs", "cache_from", "cache_to"},
	"filesystem": {"type", "size_buffer_mb", "preallocate"},
}

func (v *validator) unknownKey(k toml.Key) {
	known, ok := knownKeys[strings.Join(k[:len(k)-1], ".")]
	v.add(k, "%s", unknownKeyMsg(k, known, ok))
}

// unknownKeyMsg says that k is unknown where it stands and, when the keys
// known there are (ok), which one was probably meant, else lists them.
func unknownKeyMsg(k toml.Key, known []string, ok bool) string {
	table := strings.Join(k[:len(k)-1], ".")
	name := k[len(k)-1]
	where := "at the top level"
	if table != "" {
		where = "in [" + table + "]"
	}
	msg := fmt.Sprintf("unknown key %q %s", name, where)
	if !ok {
		return msg
	}
	if s := closest(name, known); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + "; known keys: " + strings.Join(known, ", ")
}

func (v *validator) validate() {
	r := v.r
	switch r.Version {
	case "1":
	case "":
		v.add(nil, `version is required: add version = "1" at the top`)
	default:
		v.add([]string{"version"}, `version %q is not supported; this fledge reads version = "1"`, r.Version)
	}
	switch r.Strategy {
	case "initramfs":
	case "":
		v.add(nil, `strategy is required: add strategy = "initramfs"`)
	case "oci_rootfs":
		v.add([]string{"strategy"}, `strategy "oci_rootfs" is not supported by this fledge; it builds initramfs images only (strategy = "initramfs")`)
	default:
		v.add([]string{"strategy"}, `strategy %q is unknown; use "initramfs"`, r.Strategy)
	}
	v.validateInit()
	v.validateAgent()
	v.validateSource()
	v.validateMappings()
	v.validateKernel()
	if c := r.Output.Compression; c != "" && !slices.Contains(Compressions, c) {
		v.add([]string{"output", "compression"}, "output.compression %q is unknown; use one of %s", c, strings.Join(Compressions, ", "))
	}
	if r.Mode() == ModeNone && !r.HasRootfs() && !r.HasBase() && !v.providesInit() {
		v.add([]string{"init", "none"}, "init.none = true needs a mapping that places your binary at /init (e.g. \"./init\" = \"/init\"), or a Dockerfile rootfs or source.initramfs that has one")
	}
}

func (v *validator) validateInit() {
	in := v.r.Init
	if in == nil {
		return
	}
	if in.Path != "" && in.None {
		v.add([]string{"init"}, "[init] takes either path (custom init) or none = true (no init), not both")
		return
	}
	if in.Path != "" {
		v.hostFile([]string{"init", "path"}, "init.path", in.Path)
	}
}

func (v *validator) validateAgent() {
	a, mode := v.r.Agent, v.r.Mode()
	if a == nil {
		return
	}
	if mode != ModeDefault {
		v.add([]string{"agent"}, "agent not allowed with custom/none init: [init] %s makes your program PID 1, so there is no Kestrel agent to fetch; remove [agent]", map[Mode]string{ModeCustom: "path", ModeNone: "none"}[mode])
		return
	}
	switch a.SourceStrategy {
	case "release":
		if a.Version == "" {
			v.add([]string{"agent", "source_strategy"}, `agent.version is required with source_strategy = "release" (a release tag such as "v0.1.0", or "latest")`)
		}
	case "local":
		if a.Path == "" {
			v.add([]string{"agent", "source_strategy"}, `agent.path is required with source_strategy = "local" (the Kestrel binary, relative to the recipe)`)
		} else {
			v.hostFile([]string{"agent", "path"}, "agent.path", a.Path)
		}
	case "http":
		if a.URL == "" {
			v.add([]string{"agent", "source_strategy"}, `agent.url is required with source_strategy = "http"`)
		} else if !strings.HasPrefix(a.URL, "http://") && !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "file://") {
			v.add([]string{"agent", "url"}, "agent.url %q must be an http://, https:// or file:// URL", a.URL)
		}
		if a.Checksum != "" && !validSHA256(strings.TrimPrefix(a.Checksum, "sha256:")) {
			v.add([]string{"agent", "checksum"}, `agent.checksum %q must be "sha256:" followed by 64 hex digits`, a.Checksum)
		}
	case "":
		v.add([]string{"agent"}, `agent.source_strategy is required: "release", "local" or "http"`)
	default:
		msg := fmt.Sprintf("agent.source_strategy %q is unknown; use \"release\", \"local\" or \"http\"", a.SourceStrategy)
		if s := closest(a.SourceStrategy, []string{"release", "local", "http"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		v.add([]string{"agent", "source_strategy"}, "%s", msg)
	}
}

func (v *validator) validateSource() {
	s := v.r.Source
	v.resolveBusyBoxURL()
	if s.BusyBoxSHA256 != "" && !validSHA256(s.BusyBoxSHA256) {
		v.add([]string{"source", "busybox_sha256"}, "source.busybox_sha256 %q must be 64 hex digits", s.BusyBoxSHA256)
	}
	if s.BusyBoxSHA256 != "" && s.BusyBoxURL == "" {
		v.add([]string{"source", "busybox_sha256"}, "source.busybox_sha256 is set but source.busybox_url is not; set both, or neither for the default BusyBox")
	}
	if s.BusyBox != nil && !*s.BusyBox && s.BusyBoxURL != "" {
		v.add([]string{"source", "busybox"}, "source.busybox = false leaves BusyBox out, but source.busybox_url names one; remove one of them")
	}
	if s.Dockerfile != "" && s.Image != "" {
		v.add([]string{"source", "image"}, "source.dockerfile and source.image cannot be used together; put FROM %s in the Dockerfile instead", s.Image)
	}
	if s.Dockerfile != "" {
		v.hostFile([]string{"source", "dockerfile"}, "source.dockerfile", s.Dockerfile)
	}
	v.validateBase()
	if s.Context != "" {
		if s.Dockerfile == "" {
			v.add([]string{"source", "context"}, "source.context needs source.dockerfile")
		}
		v.hostDir([]string{"source", "context"}, "source.context", s.Context)
	}
	if s.Target != "" && s.Dockerfile == "" {
		v.add([]string{"source", "target"}, "source.target needs source.dockerfile")
	}
	v.resolveContexts()
	v.parseCache()
}

// parseCache checks source.cache_from and source.cache_to with BuildKit's
// parser, and makes their local folders absolute against the recipe's.
func (v *validator) parseCache() {
	s := &v.r.Source
	if (len(s.CacheFrom) > 0 || len(s.CacheTo) > 0) && !v.r.HasRootfs() {
		key := []string{"source", "cache_from"}
		if len(s.CacheFrom) == 0 {
			key = []string{"source", "cache_to"}
		}
		v.add(key, "source.%s shares the build cache of BuildKit, which builds only a source.dockerfile or source.image rootfs; add one of them, or remove the key", key[1])
		return
	}
	var err error
	if s.cacheFrom, err = rootfs.ParseCacheFrom("source.cache_from", s.CacheFrom, v.cacheFolder); err != nil {
		v.add([]string{"source", "cache_from"}, "%v", err)
	}
	if s.cacheTo, err = rootfs.ParseCacheTo("source.cache_to", s.CacheTo, v.cacheFolder); err != nil {
		v.add([]string{"source", "cache_to"}, "%v", err)
	}
}

// cacheFolder resolves the folder of a type=local cache against the
// recipe's; like every relative path in a recipe, it may not lead out.
func (v *validator) cacheFolder(p string) (string, error) {
	host := v.r.HostPath(p)
	if !filepath.IsAbs(p) && !overlay.Within(v.r.Dir, host) {
		return "", fmt.Errorf("%q leads outside the recipe folder %s; name a folder inside it, or an absolute path", p, v.r.Dir)
	}
	return host, nil
}

// validateBase checks source.initramfs: a file, and the only bottom image
// layer (a Dockerfile or image rootfs would take the same place). Whether
// the file is an initramfs is found when it is opened (see Options).
func (v *validator) validateBase() {
	s, key := v.r.Source, []string{"source", "initramfs"}
	if s.Initramfs == "" {
		return
	}
	for _, other := range []struct{ key, val string }{{"dockerfile", s.Dockerfile}, {"image", s.Image}} {
		if other.val != "" {
			v.add(key, "source.initramfs and source.%s cannot be used together: both are the bottom image layer; keep one (a base initramfs, or a rootfs)", other.key)
		}
	}
	v.hostFile(key, "source.initramfs", s.Initramfs)
}

// resolveBusyBoxURL takes a source.busybox_url without a scheme for the
// path of a file, absolute or relative to the recipe, and makes it the
// file:// URL the download cache reads.
func (v *validator) resolveBusyBoxURL() {
	u, key := v.r.Source.BusyBoxURL, []string{"source", "busybox_url"}
	switch {
	case u == "" || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "file://"):
	case strings.Contains(u, "://"):
		v.add(key, "source.busybox_url %q: use an https://, http:// or file:// URL, or the path of a file (absolute, or relative to the recipe)", u)
	default:
		if host, ok := v.hostExisting(key, "source.busybox_url", u, false); ok {
			v.r.Source.BusyBoxURL = (&url.URL{Scheme: "file", Path: host}).String()
		}
	}
}

// resolveContexts makes the host paths of named build contexts (a folder,
// or the folder of "oci-layout://DIR@sha256:…") absolute against the
// recipe's folder, like every other path in the recipe. Other values
// (docker-image://, git, https) are BuildKit's to resolve.
func (v *validator) resolveContexts() {
	const oci = "oci-layout://"
	for name, val := range v.r.Source.Contexts {
		key := []string{"source", "contexts", name}
		what := fmt.Sprintf("source.contexts.%s", name)
		dir, isOCI := strings.CutPrefix(val, oci)
		suffix := ""
		if isOCI {
			if i := strings.LastIndex(dir, "@"); i >= 0 {
				dir, suffix = dir[:i], dir[i:]
			}
		} else if strings.Contains(val, "://") {
			continue
		}
		host, ok := v.hostDir(key, what, dir)
		if !ok {
			continue
		}
		if isOCI {
			host = oci + host + suffix
		}
		v.r.Source.Contexts[name] = host
	}
}

// validateKernel checks [kernel] and resolves kernel.path. The module tree
// itself is read when the image is assembled.
func (v *validator) validateKernel() {
	k := v.r.Kernel
	if k == nil {
		return
	}
	if k.Path == "" {
		v.add([]string{"kernel"}, `kernel.path is required: the folder holding lib/modules/VERSION (a kernel package unpacked with dpkg-deb -x), or "/" for the host's`)
	} else if host, ok := v.hostDir([]string{"kernel", "path"}, "kernel.path", k.Path); ok {
		k.Path = host
	}
	if k.Version != "" && (strings.Contains(k.Version, "/") || k.Version == "." || k.Version == "..") {
		v.add([]string{"kernel", "version"}, "kernel.version %q must be the name of a folder in lib/modules, such as \"6.1.0-28-amd64\"", k.Version)
	}
	for _, m := range k.Modules {
		if m == "" || strings.ContainsAny(m, "/ \t\n") {
			v.add([]string{"kernel", "modules"}, "kernel.modules: %q is not a module name; write names such as \"virtio_net\" (no paths, no spaces)", m)
		}
	}
}

func (v *validator) validateMappings() {
	r := v.r
	hosts := make([]string, 0, len(r.RawMap))
	for h := range r.RawMap {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	seen := map[string]string{}
	for _, h := range hosts {
		g := r.RawMap[h]
		key := []string{"mappings", h}
		switch {
		case !strings.HasPrefix(g, "/"):
			v.add(key, "mapping %q: destination %q must be an absolute guest path (start with /)", h, g)
			continue
		case hasDotDot(g):
			v.add(key, "mapping %q: destination %q must not contain \"..\"", h, g)
			continue
		}
		host, ok := v.hostPath(key, fmt.Sprintf("mapping %q", h), h)
		if !ok {
			continue
		}
		fi, err := os.Stat(host)
		if err != nil {
			v.add(key, "mapping %q: source %s does not exist (paths are relative to %s)", h, host, r.Dir)
			continue
		}
		if fi.Mode()&(os.ModeDevice|os.ModeSocket) != 0 {
			v.add(key, "mapping %q: %s is a %s; map regular files, folders, symlinks or FIFOs", h, host, overlay.HostKind(fi.Mode()))
			continue
		}
		// A destination ending in "/" is a folder, as in a Dockerfile's
		// COPY: a file lands in it under its own name.
		if strings.HasSuffix(g, "/") && !fi.IsDir() {
			g += filepath.Base(host)
		}
		g = path.Clean(g)
		if other, dup := seen[g]; dup {
			v.add(key, "mappings %q and %q both place %s; keep one", other, h, g)
			continue
		}
		seen[g] = h
		r.Mappings = append(r.Mappings, overlay.Mapping{Host: host, Guest: g})
	}
	sort.Slice(r.Mappings, func(i, j int) bool { return r.Mappings[i].Guest < r.Mappings[j].Guest })
}

// providesInit reports whether a mapping places /init: directly, or as the
// init file of a directory mapped onto the root.
func (v *validator) providesInit() bool {
	for _, m := range v.r.Mappings {
		if m.Guest == "/init" {
			return true
		}
		if m.Guest == "/" {
			if _, err := os.Lstat(filepath.Join(m.Host, "init")); err == nil {
				return true
			}
		}
	}
	return false
}

// hostPath resolves a recipe path and refuses a relative one that climbs
// out of the recipe's folder: a recipe from elsewhere must not read host
// files by accident. An absolute path is the author's explicit choice.
func (v *validator) hostPath(key []string, what, p string) (string, bool) {
	if p == "" {
		v.add(key, "%s: empty path", what)
		return "", false
	}
	host := v.r.HostPath(p)
	if !filepath.IsAbs(p) && !overlay.Within(v.r.Dir, host) {
		v.add(key, "%s: %q leads outside the recipe folder %s; move the file inside it or write an absolute path", what, p, v.r.Dir)
		return "", false
	}
	return host, true
}

func (v *validator) hostFile(key []string, what, p string) { v.hostExisting(key, what, p, false) }

func (v *validator) hostDir(key []string, what, p string) (string, bool) {
	return v.hostExisting(key, what, p, true)
}

// hostExisting checks that a recipe path names an existing folder (dir) or
// regular file (!dir), and returns its host path when it does.
func (v *validator) hostExisting(key []string, what, p string, dir bool) (string, bool) {
	host, ok := v.hostPath(key, what, p)
	if !ok {
		return "", false
	}
	fi, err := os.Stat(host)
	n := len(v.problems)
	switch {
	case err != nil:
		v.add(key, "%s: %s does not exist (paths are relative to %s)", what, host, v.r.Dir)
	case dir && !fi.IsDir():
		v.add(key, "%s: %s is not a directory", what, host)
	case !dir && fi.IsDir():
		v.add(key, "%s: %s is a directory, expected a file", what, host)
	case !dir && !fi.Mode().IsRegular():
		// A FIFO would block the build forever and a device never end.
		v.add(key, "%s: %s is a %s, expected a regular file", what, host, overlay.HostKind(fi.Mode()))
	}
	return host, len(v.problems) == n
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
