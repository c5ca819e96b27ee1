package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/volantvm/fledge/cmd/fledge/internal/inspect"
	"github.com/volantvm/fledge/fusefs"
	"github.com/volantvm/fledge/overlay"
	"github.com/volantvm/fledge/overlay/edits"
)

func newMountCmd() *cobra.Command {
	var (
		f        stackFlags
		opts     fusefs.Options
		share    string
		ws       string
		readOnly bool
	)
	cmd := &cobra.Command{
		Use:   "mount [ARTIFACT] MOUNTPOINT",
		Short: "Mount the merged view of a recipe or an artifact, editable",
		Long: `mount shows the image as it will be packed: modes, owners, sizes, link targets,
device nodes and times. It stays in the foreground until Ctrl-C, SIGTERM or
'fledge umount MOUNTPOINT'.

Mounting a recipe is a live workspace: a change to a mapped host file or
folder shows through the mount at once (inotify tells fledge; --poll looks
every half second instead, for folders on NFS, 9p or FUSE), and changes made
below MOUNTPOINT are kept in .fledge/edits beside the recipe, where pack and
build pick them up ('fledge diff' lists them, 'fledge reset' discards them).
Lower layers and host files are never modified. A workspace has one mount
at a time (two would not see each other's changes): a second mount of the
same recipe is refused, naming the first one's mountpoint and pid. diff,
reset, mknod, pack and build work beside a live mount, which shows a reset
or a mknod at once.

The mount keeps the stack it was built with: when the recipe file changes
while it serves, fledge says so on stderr (one line); remount to see the
change.

Mounting over a folder that holds files hides them until the unmount; fledge
warns with their count.

Mounting an artifact (a cpio, plain or in any compression the kernel reads,
such as a distribution's initrd) is the same live workspace: files are read
from its decompressed stream, nothing is extracted, the artifact itself is
never written, and changes are kept in the artifact's own workspace,
$XDG_STATE_HOME/fledge/artifacts/NAME-HASH (default ~/.local/state/...; HASH
names the artifact's absolute path), or the folder --workspace names. They
survive remounts; 'fledge diff ARTIFACT' lists them, 'fledge reset ARTIFACT'
discards them, and 'fledge pack ARTIFACT -o NEW' writes the edited image,
copying what no edit touched byte for byte. If the artifact changes while it
has edits, fledge says so. --read-only mounts it (or a recipe) without
taking changes.

Who may use the mount (--share):
  read   (default as root) every user browses with the permissions the image
         shows; changes are taken only from root and from the user who ran
         fledge through sudo (SUDO_UID): whatever is written lands in the
         image, so nobody else can plant a file, not even in a world-writable
         /tmp
  none   only the user who mounts sees the mount (default for an ordinary
         user)
  write  every user reads and writes as the image's permissions allow, like
         a disk (what a file-system test suite that switches users needs)

Provenance: 'fledge why PATH' tells which layer a file comes from, and with
--xattrs so does 'getfattr -n user.fledge.layer FILE'. Without --xattrs the
mount has no extended attributes (the image cannot carry any), which spares
the kernel's security.capability question before every write and chown:
about 12% of the time of a tar x into the mount.

fledge serves on half the CPUs, leaving the rest to the programs using the
mount, and lets its heap grow by 400% between collections; GOMAXPROCS=N and
GOGC=N override that.

As root fledge mounts directly. An ordinary user mounts through fusermount3
(package fuse3) where /dev/fuse is open to users, as stock distributions
ship it; read and write sharing then need user_allow_other in
/etc/fuse.conf. When the mount cannot be made, the error says what was found:
the mountpoint's type, /dev/fuse's mode, a missing fusermount3.

An ordinary user's mount is rootless: the user is the image's root in it
(they may create, chown to any owner, chmod to setuid, delete anything), and
the edits, files of the user, keep the image's owners, modes and device
numbers as the extended attribute user.fledge.stat. The kernel then checks
no permissions: other users let in with --share read (and with write,
change) whatever the image holds. The kernel refuses mknod of character and
block devices to users ("Operation not permitted") before fledge is asked:
'fledge mknod PATH c MAJOR MINOR' adds one to the workspace instead, and the
live mount shows it (see 'fledge mknod --help'). See docs/workspace.md.`,
		Example: `  mkdir -p /mnt/img                     # the mountpoint is a folder
  fledge mount /mnt/img                 # ./fledge.toml, editable
  fledge mount -c app/fledge.toml /mnt/img
  fledge mount /boot/initrd.img-6.1.0-57-amd64 /mnt/img  # edits kept apart
  fledge mount --read-only dist/app.cpio.gz /mnt/img
  fledge mount --share=write /mnt/img   # other users may write too
  fledge mknod /dev/ttyS1 c 4 65        # a device, as a user too
  fledge umount /mnt/img`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			mnt, arg := args[len(args)-1], ""
			if len(args) == 2 {
				arg = args[0]
				if err := swappedArgs(arg, mnt); err != nil {
					return err
				}
			}
			t, err := f.openWorkspace(cmd.Context(), cmd, arg, ws)
			if err != nil {
				return err
			}
			defer t.Close()
			if readOnly {
				t.Stack = layers{Lower: &overlay.Stack{Layers: t.Stack.All(), Epoch: t.Stack.Lower.Epoch}}
			}
			if err := outsideSources(t, mnt); err != nil {
				return err
			}
			if !cmd.Flags().Changed("share") && os.Geteuid() != 0 {
				// An ordinary user's mount is that user's alone unless
				// asked: allow_other needs /etc/fuse.conf's consent.
				share = "none"
			}
			if opts.Share, err = fusefs.ParseShare(share); err != nil {
				return err
			}
			if opts.Writer, err = sudoUID(); err != nil {
				return err
			}
			return serveMount(cmd, t, mnt, opts)
		},
	}
	f.register(cmd)
	f.registerCache(cmd)
	cmd.Flags().BoolVar(&opts.Debug, "debug", false, "log every FUSE request")
	cmd.Flags().BoolVar(&opts.NoPassthrough, "no-passthrough", false, "read host files through fledge instead of kernel FUSE passthrough")
	cmd.Flags().StringVar(&share, "share", "read", "who besides root may use the mount: none, read (browse; changes only from root\nand the sudo user) or write (every user, as permissions allow); an ordinary\nuser's default is none")
	cmd.Flags().BoolVar(&opts.Xattrs, "xattrs", false, "serve the provenance attribute user.fledge.layer (getfattr); writes then\ncost the kernel's security.capability request each")
	cmd.Flags().StringVar(&ws, "workspace", "", workspaceHelp)
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "show the image (with its edits) but take no changes")
	cmd.Flags().BoolVar(&opts.Poll, "poll", false, "look for host changes every half second instead of being told by inotify\n(mapped folders on NFS, 9p or another FUSE mount report none)")
	return cmd
}

// swappedArgs catches `fledge mount MOUNTPOINT ARTIFACT` (or RECIPE): a
// folder first and a file last, which can only be the other way round,
// since the mountpoint must be a folder.
func swappedArgs(first, last string) error {
	a, errA := os.Stat(first)
	b, errB := os.Stat(last)
	if errA != nil || errB != nil || !a.IsDir() || !b.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("the arguments are the wrong way round: %s is a folder and %s a file, and the mountpoint comes last: fledge mount %s %s",
		inspect.Escape(first), inspect.Escape(last), fusefs.ShellQuote(last), fusefs.ShellQuote(first))
}

// sudoUID returns the user who ran fledge through sudo, or 0 (root).
func sudoUID() (int, error) {
	s := os.Getenv("SUDO_UID")
	if s == "" {
		return 0, nil
	}
	uid, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("SUDO_UID=%q is not a user id", s)
	}
	return int(uid), nil
}

// outsideSources refuses a mountpoint inside a folder the recipe's view
// reads from the host (a mapped folder, the edits): building the view
// would walk into the mount, whose requests wait for that view, and the
// mount would hang on its first request.
func outsideSources(t *target, mnt string) error {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	// The parent, not the mountpoint: a stale mountpoint cannot be resolved.
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing is inside a missing folder; the mount says it is missing.
		return nil
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	mp := filepath.Join(parent, filepath.Base(abs))
	if t.Recipe == nil {
		if ws, err := filepath.EvalSymlinks(t.Workspace); err == nil && overlay.Within(ws, mp) {
			return fmt.Errorf("mountpoint %s is inside the workspace %s; mount it outside that folder", mnt, ws)
		}
		return nil
	}
	for _, m := range t.Recipe.Mappings {
		host, err := overlay.ResolveHost(t.Recipe.Dir, m.Host)
		if err == nil && overlay.Within(host, mp) {
			return fmt.Errorf("mountpoint %s is inside the mapped folder %s (mapped to %s), so the image would contain the mount itself; mount it outside that folder", mnt, host, m.Guest)
		}
	}
	dir, err := filepath.EvalSymlinks(t.Recipe.Dir)
	if ed := edits.Dir(dir); err == nil && overlay.Within(ed, mp) {
		return fmt.Errorf("mountpoint %s is inside the edits folder %s; mount it outside that folder", mnt, ed)
	}
	return nil
}

// serveMount mounts t and serves it until the mount goes away.
func serveMount(cmd *cobra.Command, t *target, mnt string, opts fusefs.Options) error {
	if t.Stack.Edits != nil {
		lock, err := lockWorkspace(t.Workspace, mnt)
		if err != nil {
			return err
		}
		defer lock.Close()
		if t.Artifact != "" {
			if err := recordArtifact(t); err != nil {
				return err
			}
		}
	}
	serverRuntime()
	fsys := fusefs.New(t.Stack.Lower, t.Stack.Edits)
	opts.Warn = func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "fledge: warning:", msg) }
	if t.Recipe != nil {
		// Before the mount is announced, so a change made as soon as it
		// serves is noticed.
		w, err := watchRecipe(t.Recipe.File, mnt, cmd.ErrOrStderr())
		if err != nil {
			opts.Warn(fmt.Sprintf("changes to %s will go unnoticed: %v", t.Name(), err))
		} else {
			defer w.Close()
		}
	}
	srv, err := fusefs.Mount(mnt, fsys, opts)
	if err != nil {
		return err
	}
	how := "read-only"
	if e := t.Stack.Edits; e != nil {
		how = "edits kept in " + e.Dir()
	}
	pt := "off"
	if fsys.PassesThrough() {
		pt = "on"
	}
	// The handler is in place before the mount is announced: a signal
	// sent on the announcement (a script's kill) unmounts. One that came
	// while the mount was set up reached only main's handler, which
	// cancelled the context.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if cmd.Context().Err() != nil {
		sigs <- syscall.SIGTERM
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "fledge: %s mounted at %s (%s; passthrough %s); Ctrl-C or `%s` to unmount\n",
		t.Name(), mnt, how, pt, fusefs.UmountCommand(mnt))
	go unmountOnSignal(cmd, sigs, mnt)
	srv.Wait()
	return nil
}

// unmountOnSignal unmounts at the first signal. If the mount is busy it
// says so and detaches lazily at the next signal.
func unmountOnSignal(cmd *cobra.Command, sigs <-chan os.Signal, mnt string) {
	lazy := false
	for range sigs {
		err := fusefs.Unmount(mnt, lazy)
		if err == nil {
			return
		}
		if errors.Is(err, fusefs.ErrBusy) && !lazy {
			fmt.Fprintf(cmd.ErrOrStderr(), "fledge: %v\nfledge: press Ctrl-C again to detach it lazily (users keep their open files until they close them)\n", err)
			lazy = true
			continue
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "fledge:", err)
	}
}

func newUmountCmd() *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "umount MOUNTPOINT",
		Short: "Unmount a 'fledge mount' (the mount process then exits)",
		Long: `umount unmounts the fledge mount at MOUNTPOINT. Anything else mounted there
(a tmpfs, /proc, a disk) is refused and left alone: it checks the kernel's
mount table (/proc/self/mountinfo) for a fuse.fledge mount first.

If a process still uses the mount, it says which mountpoint is busy; --lazy
detaches it anyway (the kernel finishes when the last user leaves). It also
clears a mount left stale by a killed fledge.`,
		Example: `  fledge umount /mnt/img
  fledge umount --lazy /mnt/img   # busy: detach now, finish when the last user leaves`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fusefs.Unmount(args[0], lazy)
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach even while in use (umount -l)")
	return cmd
}

// serverRuntime tunes the Go runtime for serving requests, where neither
// GOMAXPROCS nor GOGC says otherwise.
//
// The mount's Go code runs on half the CPUs (at least one). Every request
// is a round trip the process that made it waits on, and that process
// needs a CPU too: with a Go thread per CPU, the runtime's idle threads
// spin and wake each other on the CPUs the tar or cp at work needs. Measured on 2 CPUs with
// bench/mount-tar.sh on tmpfs (TMPDIR=/dev/shm), GOMAXPROCS=1 against the
// default: tar x 7.5 s instead of 12.6 s, cp -r 5.5 s instead of 8.8 s,
// rm -rf 2.5 s instead of 3.8 s.
//
// The garbage collector runs when the heap has grown by 400% instead of
// 100%. Every change allocates (a view update copies the nodes on its
// path), and on one CPU each collection stalls the request waiting on it.
// The price is memory: the heap may reach five times the live view.
// Measured with a tar x of the Go tree into a mount on a fresh ext4, 3 runs
// each: 6.96 s at GOGC=100, 6.35 s at 200, 6.18 s at 400, 6.39 s at 800.
func serverRuntime() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(1, runtime.NumCPU()/2))
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
