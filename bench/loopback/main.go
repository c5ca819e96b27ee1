// Command loopback serves a host folder at a mountpoint with go-fuse's own
// loopback file system, mounted the way fledge mounts: passthrough,
// allow_other with default_permissions, no extended attributes, entries
// and attributes cached for a second. It does nothing but forward each
// request to the host, so it is the yardstick for what any file system
// built on go-fuse and the kernel's FUSE device can reach on a machine:
// bench/mount-tar.sh times it beside the host and beside fledge mount.
//
//	loopback FOLDER MOUNTPOINT
//
// It says "mounted at MOUNTPOINT" on stderr once it serves, and exits when
// unmounted. Run it with the runtime settings fledge mount picks for itself
// (GOMAXPROCS=1 GOGC=400 on 2 CPUs) to compare like with like.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: loopback FOLDER MOUNTPOINT")
		os.Exit(2)
	}
	root, err := fs.NewLoopbackRoot(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
	second := time.Second
	srv, err := fs.Mount(os.Args[2], root, &fs.Options{
		EntryTimeout: &second,
		AttrTimeout:  &second,
		MountOptions: fuse.MountOptions{
			FsName:        "loopback",
			Name:          "loopback",
			Options:       []string{"default_permissions"},
			AllowOther:    true,
			DirectMount:   true,
			DisableXAttrs: true,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "loopback: mounted at", os.Args[2])
	srv.Wait()
}
