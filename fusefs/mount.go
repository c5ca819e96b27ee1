package fusefs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options tune a mount.
type Options struct {
	// Debug logs every FUSE request, to Logger (nil: the standard logger).
	Debug  bool
	Logger *log.Logger
	// NoPassthrough serves host files through the server even where the
	// kernel could read them directly.
	NoPassthrough bool
	// Poll rebuilds the view of a writable mount when a request finds it
	// older than half a second, instead of watching the host with inotify.
	// For mapped folders on file systems that report no changes (NFS, 9p,
	// other FUSE mounts); the kernel then caches host-backed entries only
	// briefly, which makes listings slower.
	Poll bool
	// Warn, if set, is told when the mountpoint holds entries the mount
	// hides, and when the mount falls back from watching the host to
	// polling it.
	Warn func(string)
	// Share says who besides root may use the mount (see Share).
	Share Share
	// Writer is the user, besides root, whose changes ShareRead takes
	// (the one who ran fledge through sudo); 0 leaves only root.
	Writer int
	// Xattrs serves the provenance attribute user.fledge.layer. Without it
	// the mount has no extended attributes at all (see noXattrs).
	Xattrs bool
}

// Mount serves f at mountpoint until it is unmounted. A mountpoint left
// stale by a killed fledge ("transport endpoint is not connected") is
// detached first.
func Mount(mountpoint string, f *FS, o Options) (*fuse.Server, error) {
	if err := recoverStale(mountpoint); err != nil {
		return nil, err
	}
	if err := checkDevice(o.Share); err != nil {
		return nil, err
	}
	if o.Warn != nil {
		f.warn = o.Warn
	}
	if n := hiddenEntries(mountpoint); n > 0 {
		f.warn(fmt.Sprintf("%s holds %d entries, hidden while it is mounted (they are back after unmounting)", mountpoint, n))
	}
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mountpoint: %w", err)
	}
	f.inval = newInvalidator(f.root.EmbeddedInode(), abs)
	if !f.ReadOnly() && !o.Poll {
		w, err := f.watch()
		if err != nil {
			f.warn(fmt.Sprintf("%v; host changes are polled instead", err))
		} else {
			f.watcher = w
			f.watching.Store(true)
		}
	}
	// A view that cannot be built fails the mount before there is one:
	// after, every request would fail, and the mountpoint stay dead.
	if _, err := f.View(); err != nil {
		return nil, err
	}
	f.share, f.writer, f.xattrs = o.Share, o.Writer, o.Xattrs
	// As root the kernel checks every caller against the modes and owners
	// the image shows (default_permissions). An ordinary user's mount is
	// rootless: that user is the image's root in it, and would fail the
	// kernel's checks against files the image gives root, so the kernel
	// checks nothing and fledge lets the user do what root may (see
	// imageOwner and Access). Without --share only the user can reach the
	// mount at all (the kernel lets no other uid in without allow_other).
	var opts []string
	if uid := os.Geteuid(); uid != 0 {
		f.user = &fuse.Owner{Uid: uint32(uid), Gid: uint32(os.Getegid())}
	} else {
		opts = append(opts, "default_permissions")
	}
	if f.ReadOnly() {
		opts = append(opts, "ro")
	}
	var disabled uint64
	if o.NoPassthrough || !mayPassThrough() {
		disabled = fuse.CAP_PASSTHROUGH
	}
	srv, err := fs.Mount(mountpoint, f.Root(), &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:      "fledge",
			Name:        "fledge",
			Options:     opts,
			AllowOther:  o.Share != ShareNone,
			DirectMount: true,
			Debug:       o.Debug || os.Getenv("FLEDGE_FUSE_DEBUG") != "",
			Logger:      o.Logger,
			// Mapped files may live on an overlayfs (a container's root),
			// which is one level of stacking already.
			MaxStackDepth:        2,
			MaxReadAhead:         1 << 20,
			DisabledCapabilities: disabled,
			// The mount clears setuid and setgid itself (Setattr,
			// editFile.Write, editHandle), so the kernel needs no fresh
			// attributes before each chown to do it: one GETATTR less per
			// file of a tar x.
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2,
			// Plain READDIR: find and friends list names without paying a
			// lookup per entry (the kernel asks READDIRPLUS for the first
			// batch of every directory even in its adaptive mode, and that
			// batch is a whole 32 KiB getdents buffer). Measured on 20,000
			// mapped files right after the kernel dropped its caches: find
			// 3-5x the host's time instead of 11x, ls -lR 5-6x instead of
			// 1.2-1.7x. Listing again asks fledge nothing (see timeout and
			// OpendirHandle): both then take about the host's time.
			DisableReadDirPlus: true,
		},
		// Modes are shown exactly as packed, 0000 included.
		NullPermissions: true,
	})
	if err != nil {
		if f.watcher != nil {
			f.watcher.close()
		}
		// The kernel may have mounted before the server failed to start;
		// nothing else can be mounted there (see recoverStale), and a dead
		// mount cannot even be looked at, so it is detached unasked.
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		return nil, fmt.Errorf("mount %s as uid %d: %s", mountpoint, os.Geteuid(), strings.TrimSpace(err.Error()))
	}
	f.passthrough.Store(disabled == 0 && kernelPassthrough(srv))
	go f.inval.run()
	go func() {
		srv.Wait()
		f.inval.stop()
		if f.watcher != nil {
			f.watcher.close()
		}
	}()
	return srv, nil
}

// mayPassThrough reports whether the kernel takes host files for FUSE
// passthrough from this process: handing one over needs CAP_SYS_ADMIN,
// which an ordinary user lacks, so a rootless mount serves files itself.
func mayPassThrough() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}

// PassesThrough reports whether the mount lets the kernel read and write
// host files directly (FUSE passthrough): where the kernel offers it, to
// root, unless Options.NoPassthrough.
func (f *FS) PassesThrough() bool { return f.passthrough.Load() }

// kernelPassthrough reports whether the kernel offers to read host files
// directly (FUSE passthrough, Linux 6.9 or later).
func kernelPassthrough(srv *fuse.Server) bool {
	return srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
}

// recoverStale detaches a dead FUSE mount at mountpoint and refuses a
// live one.
func recoverStale(mountpoint string) error {
	// statfs always reaches the server, where stat may be answered from
	// attributes the kernel cached before the server died.
	var sfs unix.Statfs_t
	err := unix.Statfs(mountpoint, &sfs)
	if errors.Is(err, syscall.ENOTCONN) {
		if m, ok, err := mountAt(mountpoint); err != nil || !ok || !m.fledge() {
			if err != nil {
				return err
			}
			return fmt.Errorf("%s is a stale mount (its server died) that is not fledge's (%v); fledge leaves it alone: detach it with `umount -l %s` as root", mountpoint, m, ShellQuote(mountpoint))
		}
		if err := unix.Unmount(mountpoint, unix.MNT_DETACH); err != nil {
			out, ferr := exec.Command("fusermount3", "-uz", mountpoint).CombinedOutput()
			if ferr != nil {
				return fmt.Errorf("%s is a stale mount (its server died) and could not be detached: %v; %s: run `umount -l %s` as root", mountpoint, err, strings.TrimSpace(string(out)), ShellQuote(mountpoint))
			}
		}
	}
	if err := checkMountpoint(mountpoint); err != nil {
		return err
	}
	m, ok, err := mountAt(mountpoint)
	switch {
	case err != nil:
		return err
	case ok && m.fledge():
		return fmt.Errorf("%s is already a fledge mount; unmount it first (`%s`)", mountpoint, UmountCommand(mountpoint))
	case ok:
		return fmt.Errorf("%s is already the mountpoint of %s; mount fledge on another folder", mountpoint, m)
	}
	return nil
}

// ErrBusy is returned (wrapped) when a mountpoint is in use.
var ErrBusy = errors.New("mountpoint busy")

// Unmount unmounts the fledge mount at mountpoint, stale ones included,
// and refuses any other mount. lazy detaches it even while in use (the
// kernel finishes when the last user leaves).
func Unmount(mountpoint string, lazy bool) error {
	m, ok, err := mountAt(mountpoint)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	if !ok {
		return fmt.Errorf("unmount %s: not a mountpoint (nothing is mounted there)", mountpoint)
	}
	if !m.fledge() {
		return fmt.Errorf("unmount %s: refused: it is %s, not a fledge mount; fledge umount only unmounts what fledge mount mounted", mountpoint, m)
	}
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err = unix.Unmount(mountpoint, flags)
	// A watched mount looks names up through its own mountpoint when the
	// host changes (see invalidator.listing), which keeps it busy for a
	// moment; a process that really uses it keeps it busy for longer.
	for try := 0; errors.Is(err, syscall.EBUSY) && try < 5; try++ {
		time.Sleep(100 * time.Millisecond)
		err = unix.Unmount(mountpoint, flags)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EBUSY):
		q := ShellQuote(mountpoint)
		return fmt.Errorf("%w: %s is in use: a process has a file open or its working directory below it (list them with `fuser -vm %s`); close them and retry, or force it with `fledge umount --lazy %s`",
			ErrBusy, mountpoint, q, q)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("unmount %s: not a mountpoint", mountpoint)
	case errors.Is(err, syscall.EPERM):
		args := []string{"-u", mountpoint}
		if lazy {
			args = []string{"-uz", mountpoint}
		}
		if out, ferr := exec.Command("fusermount3", args...).CombinedOutput(); ferr != nil {
			return fmt.Errorf("unmount %s: %v (fusermount3: %s)", mountpoint, err, out)
		}
		return nil
	}
	return fmt.Errorf("unmount %s: %w", mountpoint, err)
}
