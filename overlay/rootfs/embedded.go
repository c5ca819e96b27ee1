package rootfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	ctdoverlay "github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/moby/buildkit/cache/remotecache"
	inlineremotecache "github.com/moby/buildkit/cache/remotecache/inline"
	localremotecache "github.com/moby/buildkit/cache/remotecache/local"
	registryremotecache "github.com/moby/buildkit/cache/remotecache/registry"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/executor/oci"
	"github.com/moby/buildkit/frontend"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/gateway"
	"github.com/moby/buildkit/frontend/gateway/forwarder"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/version"
	"github.com/moby/buildkit/worker"
	"github.com/moby/buildkit/worker/base"
	"github.com/moby/buildkit/worker/runc"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// embedded is a BuildKit daemon living inside the fledge process: the
// controller with the OCI (runc) worker, served over an in-memory gRPC
// connection, so a build needs no daemon to be installed or started.
type embedded struct {
	client  *client.Client
	closers []func() error // run in reverse order by Close
}

// startEmbedded brings up BuildKit with its state under stateDir. The caller
// must Close it, which stops every build step and releases the state lock.
func startEmbedded(ctx context.Context, stateDir string) (_ *embedded, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("embedded BuildKit needs root to run build steps in runc containers, and fledge runs as uid %d: run fledge as root, or point --buildkit-addr (BUILDKIT_HOST) at a BuildKit daemon", os.Geteuid())
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("embedded BuildKit runs build steps with runc, which is not in PATH: install the runc package (apt-get install runc), or point --buildkit-addr (BUILDKIT_HOST) at a BuildKit daemon")
	}
	root, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("buildkit state dir: %w", err)
	}
	e := &embedded{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	unlock, err := lockState(root)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, unlock)
	// BuildKit narrates its start-up through logrus ("found worker ...");
	// a fledge user learns nothing from it, errors aside.
	logrus.SetLevel(logrus.ErrorLevel)

	// The daemon lives until Close, not until the build's context ends: a
	// cancelled build still needs a working daemon to stop its steps.
	ctrl, err := e.newController(context.WithoutCancel(ctx), root)
	if err != nil {
		return nil, fmt.Errorf("starting embedded BuildKit in %s: %w", root, err)
	}
	e.closers = append(e.closers, ctrl.Close)
	if err := e.serve(ctrl); err != nil {
		return nil, fmt.Errorf("connecting to embedded BuildKit: %w", err)
	}
	return e, nil
}

// serve connects a client to the controller through an in-memory listener.
func (e *embedded) serve(ctrl *control.Controller) error {
	server := grpc.NewServer(
		// The interceptors carry typed errors (the Dockerfile source of a
		// failed step) across gRPC, as in buildkitd.
		grpc.ChainUnaryInterceptor(grpcerrors.UnaryServerInterceptor),
		grpc.StreamInterceptor(grpcerrors.StreamServerInterceptor),
		grpc.MaxRecvMsgSize(1<<27), grpc.MaxSendMsgSize(1<<27),
	)
	ctrl.Register(server)
	lis := bufconn.Listen(1 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.Serve(lis)
	}()
	e.closers = append(e.closers, func() error {
		server.Stop()
		<-done
		return nil
	})
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }
	c, err := client.New(context.Background(), "passthrough:///fledge-embedded", client.WithContextDialer(dial))
	if err != nil {
		return err
	}
	e.client = c
	e.closers = append(e.closers, c.Close)
	return nil
}

// newController assembles what buildkitd assembles: session manager, the
// runc worker, the Dockerfile frontend built in (so no frontend image is
// pulled) and the gateway frontend for an explicit BUILDKIT_SYNTAX.
func (e *embedded) newController(ctx context.Context, root string) (_ *control.Controller, err error) {
	// Until the controller exists and owns them, what is opened here is
	// closed here on failure.
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; err != nil && i >= 0; i-- {
			undo[i]()
		}
	}()
	sm, err := session.NewManager()
	if err != nil {
		return nil, err
	}
	w, err := e.newWorker(ctx, root)
	if err != nil {
		return nil, err
	}
	undo = append(undo, w.Close)
	wc := &worker.Controller{}
	if err := wc.Add(w); err != nil {
		return nil, err
	}
	frontends, err := frontends(wc)
	if err != nil {
		return nil, err
	}
	cacheStore, err := bboltcachestorage.NewStore(filepath.Join(root, "cache.db"))
	if err != nil {
		return nil, err
	}
	undo = append(undo, cacheStore.Close)
	historyDB, err := boltutil.SafeOpen(filepath.Join(root, "history.db"), 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	undo = append(undo, historyDB.Close)
	stop := make(chan struct{})
	e.closers = append(e.closers, func() error { close(stop); return nil })
	return control.NewController(control.Opt{
		SessionManager:   sm,
		WorkerController: wc,
		Frontends:        frontends,
		// The cache backends of embeddedCacheTypes, wired as buildkitd
		// wires them; registries resolve as the worker's pulls do.
		ResolveCacheExporterFuncs: map[string]remotecache.ResolveCacheExporterFunc{
			"registry": registryremotecache.ResolveCacheExporterFunc(sm, w.RegistryHosts),
			"local":    localremotecache.ResolveCacheExporterFunc(sm),
			"inline":   inlineremotecache.ResolveCacheExporterFunc(),
		},
		ResolveCacheImporterFuncs: map[string]remotecache.ResolveCacheImporterFunc{
			"registry": registryremotecache.ResolveCacheImporterFunc(sm, w.ContentStore(), w.RegistryHosts),
			"local":    localremotecache.ResolveCacheImporterFunc(sm),
		},
		CacheManager:   solver.NewCacheManager(ctx, "local", cacheStore, worker.NewCacheResultStorage(wc)),
		HistoryDB:      historyDB,
		CacheStore:     cacheStore,
		LeaseManager:   w.LeaseManager(),
		ContentStore:   w.ContentStore(),
		GarbageCollect: w.GarbageCollect,
		GracefulStop:   stop,
		// Build history is for a long-running daemon's clients; recording
		// it in the background would race with Close.
		HistoryConfig: &config.HistoryConfig{MaxEntries: new(int64)},
	})
}

// frontends are the Dockerfile frontend, built in, and the gateway that
// runs a frontend image when BUILDKIT_SYNTAX asks for one.
func frontends(wc *worker.Controller) (map[string]frontend.Frontend, error) {
	gw, err := gateway.NewGatewayFrontend(wc.Infos(), nil)
	if err != nil {
		return nil, err
	}
	return map[string]frontend.Frontend{
		"dockerfile.v0": forwarder.NewGatewayForwarder(wc.Infos(), dockerfile.Build),
		"gateway.v0":    gw,
	}, nil
}

// newWorker makes the OCI worker. Build steps use the host network, as
// buildkitd does when no CNI is configured; nothing else is shared.
func (e *embedded) newWorker(ctx context.Context, root string) (*base.Worker, error) {
	sn := e.snapshotter(root)
	opt, err := runc.NewWorkerOpt(root, sn, false, oci.ProcessSandbox, nil, nil,
		netproviders.Opt{Mode: "host"}, nil, "", "", false, nil, "", "", nil)
	if err != nil {
		return nil, err
	}
	opt.BuildkitVersion = client.BuildkitVersion{Package: version.Package, Version: version.Version, Revision: version.Revision}
	return base.NewWorker(ctx, opt)
}

// snapshotter picks overlayfs where the state dir supports it and the
// native (copying) snapshotter elsewhere. BuildKit's worker never closes
// the snapshotter, whose metadata database stays locked until it is; it is
// closed here so a second build in the same process can open it again.
func (e *embedded) snapshotter(root string) runc.SnapshotterFactory {
	f := runc.SnapshotterFactory{Name: "native", New: native.NewSnapshotter}
	if err := overlayutils.Supported(root); err == nil {
		f = runc.SnapshotterFactory{Name: "overlayfs", New: func(r string) (ctdsnapshot.Snapshotter, error) {
			return ctdoverlay.NewSnapshotter(r, ctdoverlay.AsynchronousRemove)
		}}
	}
	mk := f.New
	f.New = func(r string) (ctdsnapshot.Snapshotter, error) {
		s, err := mk(r)
		if err == nil {
			e.closers = append(e.closers, s.Close)
		}
		return s, err
	}
	return f
}

// maxCache bounds the build cache kept in the state directory.
const maxCache = 10 << 30

// Close trims the build cache, then stops the daemon: the connection, the
// server (cancelling running steps), the controller and its databases, and
// the state lock. The cache is trimmed here, in the foreground, rather than
// by BuildKit's background collector, which would still be running when the
// databases close.
func (e *embedded) Close() error {
	var errs []error
	if e.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := e.client.Prune(ctx, nil, client.WithKeepOpt(0, 0, maxCache, 0)); err != nil {
			errs = append(errs, fmt.Errorf("trimming the build cache: %w", err))
		}
		cancel()
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	e.closers = nil
	return errors.Join(errs...)
}
