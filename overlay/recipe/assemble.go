package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/volantvm/fledge/initc"
	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/fetch"
	"github.com/volantvm/fledge/overlay/ldso"
	"github.com/volantvm/fledge/overlay/rootfs"
)

// Options are the machine-side settings of an assembly.
type Options struct {
	CacheDir string    // fledge's cache; see fetch.DefaultDir
	Offline  bool      // use the cache only
	Progress io.Writer // downloads and builds report here; nil = silent
	Epoch    time.Time // mtime of entries that carry none
	BuildKit rootfs.Options
}

// Assemble turns a recipe into its layer stack, bottom first: skeleton,
// rootfs, busybox, init, agent, libraries (what the mapped and edited
// programs need from the host, unless source.host_libraries = false),
// mappings, edits (.fledge/edits beside the recipe: changes made through
// fledge mount). Inputs that cost time
// (downloads, the compiled init, BuildKit output) come from the cache.
func Assemble(ctx context.Context, r *Recipe, o Options) (*overlay.Stack, error) {
	cache := &fetch.Cache{Dir: o.CacheDir, Offline: o.Offline, Progress: o.Progress}
	st := &overlay.Stack{Epoch: o.Epoch, Layers: []overlay.Layer{overlay.Skeleton()}}
	if r.HasRootfs() {
		bk := o.BuildKit
		bk.CacheFrom = append(slices.Clone(r.Source.cacheFrom), bk.CacheFrom...)
		bk.CacheTo = append(slices.Clone(r.Source.cacheTo), bk.CacheTo...)
		l, err := rootfs.Build(ctx, r.rootfsSpec(), bk)
		if err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
		st.Layers = append(st.Layers, l)
		if err := r.settleRootfsInit(l, o.Progress); err != nil {
			return nil, err
		}
	}
	if r.WantsBusyBox() {
		l, err := busyBoxLayer(ctx, cache, r.Source.BusyBoxURL, r.Source.BusyBoxSHA256)
		if err != nil {
			return nil, r.busyBoxError(err)
		}
		st.Layers = append(st.Layers, l)
	}
	switch r.Mode() {
	case ModeDefault:
		bin, err := initc.Build(ctx, o.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		st.Layers = append(st.Layers, single("init", "/init", overlay.Bytes(bin), int64(len(bin)), "initc"))
		agent, err := agentLayer(ctx, cache, r)
		if err != nil {
			return nil, err
		}
		st.Layers = append(st.Layers, agent)
	case ModeCustom:
		p, err := overlay.ResolveHost(r.Dir, r.HostPath(r.Init.Path))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Key("init.path"), err)
		}
		st.Layers = append(st.Layers, single("init", "/init", overlay.HostFile(p), fileSize(p), p))
	}
	top := []overlay.Layer{
		overlay.Mappings(r.Dir, r.Mappings),
		overlay.OpenEdits(filepath.Join(r.Dir, overlay.Workspace, "edits")),
	}
	if r.WantsHostLibraries() {
		below := append([]overlay.Layer(nil), st.Layers...)
		st.Layers = append(st.Layers, ldso.Libraries(below, top, ldso.Host{Root: "/"}))
	}
	st.Layers = append(st.Layers, top...)
	return st, nil
}

// busyBoxError says what to do about a BusyBox that could not be had: for
// a checksum mismatch, the sha256 to set if the file is the one meant;
// else another source, or none.
func (r *Recipe) busyBoxError(err error) error {
	url := r.Key("source.busybox_url")
	var mismatch *fetch.MismatchError
	if errors.As(err, &mismatch) {
		return fmt.Errorf("busybox (%s): %w; if %s is the BusyBox you want, set %s", url, err, r.Source.BusyBoxURL, r.Setting("source.busybox_sha256", strconv.Quote(mismatch.Got)))
	}
	return fmt.Errorf("busybox (%s): %w; point %s at a local copy (Debian's busybox-static: /usr/bin/busybox) or set %s", url, err, url, r.Setting("source.busybox", "false"))
}

// settleRootfsInit applies r.RootfsInit once the rootfs is known: in the
// default mode, an /init the rootfs brings is kept (the mode becomes none)
// or refused, as the direct form's flags asked.
func (r *Recipe) settleRootfsInit(l overlay.Layer, progress io.Writer) error {
	if r.RootfsInit == ReplaceRootfsInit || r.Mode() != ModeDefault {
		return nil
	}
	ents, err := l.Entries()
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if !slices.ContainsFunc(ents, func(e overlay.Entry) bool { return e.Path == "/init" }) {
		return nil
	}
	if r.RootfsInit == RefuseRootfsInit {
		return fmt.Errorf("the Dockerfile's rootfs has /init, and %s asks for the Kestrel agent, which runs under fledge's init; add %s to replace your /init, or leave out %s to keep it", r.Key("agent"), r.Setting("init", "default"), r.Key("agent"))
	}
	r.Init, r.Agent = &Init{None: true}, nil
	if progress != nil {
		fmt.Fprintf(progress, "fledge: the Dockerfile's /init is kept as PID 1 (no fledge init, no agent); %s puts fledge's init and the Kestrel agent in its place\n", r.Setting("init", "default"))
	}
	return nil
}

func (r *Recipe) rootfsSpec() rootfs.Spec {
	s := rootfs.Spec{
		Target:        r.Source.Target,
		BuildArgs:     r.Source.BuildArgs,
		Image:         r.Source.Image,
		NamedContexts: r.Source.Contexts,
	}
	if r.Source.Dockerfile != "" {
		s.Dockerfile = r.HostPath(r.Source.Dockerfile)
		s.Context = filepath.Dir(s.Dockerfile)
	}
	if r.Source.Context != "" {
		s.Context = r.HostPath(r.Source.Context)
	}
	return s
}

func busyBoxLayer(ctx context.Context, cache *fetch.Cache, url, sum string) (overlay.Layer, error) {
	p, err := cache.Fetch(ctx, url, sum)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return overlay.BusyBox(overlay.HostFile(p), url, overlay.Applets(f, fi.Size())), nil
}

func agentLayer(ctx context.Context, cache *fetch.Cache, r *Recipe) (overlay.Layer, error) {
	a := r.Agent
	var (
		p, source string
		err       error
	)
	switch a.SourceStrategy {
	case "local":
		p, err = overlay.ResolveHost(r.Dir, r.HostPath(a.Path))
		source = p
	case "http":
		p, err = cache.KestrelHTTP(ctx, a.URL, a.Checksum)
		source = a.URL
	default:
		p, err = cache.KestrelRelease(ctx, a.Version)
		source = "volantvm/volant release " + a.Version
	}
	if errors.Is(err, fetch.ErrNotCached) {
		local := `agent.source_strategy = "local" with agent.path`
		if f, ok := r.Flags["agent"]; ok {
			local = f + " PATH"
		}
		return nil, fmt.Errorf("agent (%s): %w, or use a local agent (%s)", a.SourceStrategy, err, local)
	}
	if err != nil {
		return nil, fmt.Errorf("agent (%s): %w", a.SourceStrategy, err)
	}
	return single("agent", "/bin/kestrel", overlay.HostFile(p), fileSize(p), source), nil
}

// single is a layer of one executable file.
func single(layer, guest string, c overlay.Content, size int64, source string) overlay.Layer {
	return &overlay.Static{LayerName: layer, List: []overlay.Entry{{
		Path: guest, Type: overlay.Regular, Perm: 0o755, Size: size, Content: c, Source: source,
	}}}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
