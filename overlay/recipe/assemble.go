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
	"github.com/volantvm/fledge/overlay/kmod"
	"github.com/volantvm/fledge/overlay/ldso"
	"github.com/volantvm/fledge/overlay/rootfs"
)

// Options are the machine-side settings of an assembly.
type Options struct {
	CacheDir string    // fledge's cache; see fetch.DefaultDir
	InitCC   string    // compiler for the default init; "" = the prebuilt one (see initc.CompilerEnv)
	Offline  bool      // use the cache only
	Progress io.Writer // downloads and builds report here; nil = silent
	Epoch    time.Time // mtime of entries that carry none
	BuildKit rootfs.Options
	// OpenBase opens the existing initramfs at path (source.initramfs)
	// as a layer named layer, its entries keeping the archive's owners,
	// modes, devices and times. A layer that holds resources (an open
	// stream) is an io.Closer; see Close. The reader lives outside
	// overlay, so the caller supplies it; nil refuses a base.
	OpenBase func(path, layer string) (overlay.Layer, error)
}

// BaseLayer names the layer source.initramfs becomes.
const BaseLayer = "initramfs"

// Assemble turns a recipe into the layer stack below its edits, bottom
// first: skeleton, rootfs or the base initramfs, busybox, init, agent,
// modules (the [kernel] modules and what they need), libraries (what the
// mapped programs and those of ed need from the host, unless
// source.host_libraries = false), mappings. ed is the workspace's edits
// layer (see edits.Dir), which goes on top of the stack and is not in it;
// nil for none. Inputs that cost time (downloads, a compiled init, BuildKit
// output) come from the cache. The caller closes the stack's layers (Close)
// when done with it.
func Assemble(ctx context.Context, r *Recipe, ed overlay.Layer, o Options) (*overlay.Stack, error) {
	st, err := assemble(ctx, r, ed, o)
	if err != nil {
		Close(st)
		return nil, err
	}
	return st, nil
}

// Close releases what the layers of st hold open (the base initramfs's
// stream); their contents are unreadable after.
func Close(st *overlay.Stack) error {
	var errs []error
	for _, l := range st.Layers {
		if c, ok := l.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func assemble(ctx context.Context, r *Recipe, ed overlay.Layer, o Options) (*overlay.Stack, error) {
	cache := &fetch.Cache{Dir: o.CacheDir, Offline: o.Offline, Progress: o.Progress}
	st := &overlay.Stack{Epoch: o.Epoch, Layers: []overlay.Layer{overlay.Skeleton()}}
	if r.HasBase() {
		l, err := r.baseLayer(o.OpenBase)
		if err != nil {
			return st, err
		}
		st.Layers = append(st.Layers, l)
	}
	if r.HasRootfs() {
		bk := o.BuildKit
		bk.CacheFrom = append(slices.Clone(r.Source.cacheFrom), bk.CacheFrom...)
		bk.CacheTo = append(slices.Clone(r.Source.cacheTo), bk.CacheTo...)
		l, err := rootfs.Build(ctx, r.rootfsSpec(), bk)
		if err != nil {
			return st, fmt.Errorf("rootfs: %w", err)
		}
		st.Layers = append(st.Layers, l)
		if err := r.settleRootfsInit(l, o.Progress); err != nil {
			return st, err
		}
	}
	if r.WantsBusyBox() {
		l, err := busyBoxLayer(ctx, cache, r.Source.BusyBoxURL, r.Source.BusyBoxSHA256)
		if err != nil {
			return st, r.busyBoxError(err)
		}
		st.Layers = append(st.Layers, l)
	}
	switch r.Mode() {
	case ModeDefault:
		bin, err := initc.Build(ctx, o.InitCC, o.CacheDir)
		if err != nil {
			return st, fmt.Errorf("init: %w", err)
		}
		st.Layers = append(st.Layers, single("init", "/init", overlay.Bytes(bin), int64(len(bin)), "initc"))
		agent, err := agentLayer(ctx, cache, r)
		if err != nil {
			return st, err
		}
		st.Layers = append(st.Layers, agent)
	case ModeCustom:
		p, err := overlay.ResolveHost(r.Dir, r.HostPath(r.Init.Path))
		if err != nil {
			return st, fmt.Errorf("%s: %w", r.Key("init.path"), err)
		}
		st.Layers = append(st.Layers, single("init", "/init", overlay.HostFile(p), fileSize(p), p))
	}
	if k := r.Kernel; k != nil && len(k.Modules) > 0 {
		l, err := modulesLayer(k)
		if err != nil {
			return st, err
		}
		st.Layers = append(st.Layers, l)
	}
	mappings := overlay.Mappings(r.Dir, r.Mappings)
	if r.WantsHostLibraries() {
		top := []overlay.Layer{mappings}
		if ed != nil {
			top = append(top, ed)
		}
		below := append([]overlay.Layer(nil), st.Layers...)
		st.Layers = append(st.Layers, ldso.Libraries(below, top, ldso.Host{Root: "/"}))
	}
	st.Layers = append(st.Layers, mappings)
	return st, nil
}

// baseLayer opens source.initramfs with open.
func (r *Recipe) baseLayer(open func(path, layer string) (overlay.Layer, error)) (overlay.Layer, error) {
	key := r.Key("source.initramfs")
	if open == nil {
		return nil, fmt.Errorf("%s: this command cannot read an initramfs base", key)
	}
	p, err := overlay.ResolveHost(r.Dir, r.HostPath(r.Source.Initramfs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	l, err := open(p, BaseLayer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return l, nil
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
