package recipe

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/volantvm/fledge/initc"
	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/fetch"
	"github.com/volantvm/fledge/overlay/kmod"
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
// rootfs, busybox, init, agent, modules (the [kernel] modules and what
// they need), libraries (what the mapped and edited
// programs need from the host, unless source.host_libraries = false),
// mappings, edits (.fledge/edits beside the recipe: changes made through
// fledge mount). Inputs that cost time
// (downloads, the compiled init, BuildKit output) come from the cache.
func Assemble(ctx context.Context, r *Recipe, o Options) (*overlay.Stack, error) {
	cache := &fetch.Cache{Dir: o.CacheDir, Offline: o.Offline, Progress: o.Progress}
	st := &overlay.Stack{Epoch: o.Epoch, Layers: []overlay.Layer{overlay.Skeleton()}}
	if r.HasRootfs() {
		l, err := rootfs.Build(ctx, r.rootfsSpec(), o.BuildKit)
		if err != nil {
			return nil, fmt.Errorf("rootfs: %w", err)
		}
		st.Layers = append(st.Layers, l)
	}
	if r.WantsBusyBox() {
		l, err := busyBoxLayer(ctx, cache, r.Source.BusyBoxURL, r.Source.BusyBoxSHA256)
		if err != nil {
			return nil, fmt.Errorf("busybox (source.busybox_url): %w; point source.busybox_url at a local copy (Debian's busybox-static: file:///usr/bin/busybox) or set source.busybox = false", err)
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
			return nil, fmt.Errorf("init.path: %w", err)
		}
		st.Layers = append(st.Layers, single("init", "/init", overlay.HostFile(p), fileSize(p), p))
	}
	if k := r.Kernel; k != nil && len(k.Modules) > 0 {
		l, err := modulesLayer(k)
		if err != nil {
			return nil, err
		}
		st.Layers = append(st.Layers, l)
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

// modulesLayer resolves [kernel] modules in the kernel's tree.
func modulesLayer(k *Kernel) (overlay.Layer, error) {
	tree, err := kmod.Open(k.Path, k.Version)
	if err != nil {
		return nil, err
	}
	c, err := tree.Resolve(k.Modules)
	if err != nil {
		return nil, err
	}
	return c.Layer(), nil
}

// KernelImage is the kernel the recipe's [kernel] tree holds,
// boot/vmlinuz-VERSION; "" when the recipe has no [kernel].
func (r *Recipe) KernelImage() (string, error) {
	if r.Kernel == nil {
		return "", nil
	}
	tree, err := kmod.Open(r.Kernel.Path, r.Kernel.Version)
	if err != nil {
		return "", err
	}
	return tree.Kernel(), nil
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
