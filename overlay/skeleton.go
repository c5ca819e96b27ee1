package overlay

import "io/fs"

// Skeleton is the bottom layer: the FHS directories every initramfs needs
// and the two device nodes the kernel uses before devtmpfs is mounted
// (/dev/console for init's stdio, /dev/null). Device nodes exist only as
// entries, so building an image needs no root.
func Skeleton() Layer {
	dirs := []struct {
		path string
		perm fs.FileMode
	}{
		{"/bin", 0o755}, {"/dev", 0o755}, {"/etc", 0o755}, {"/lib", 0o755},
		{"/mnt", 0o755}, {"/proc", 0o755}, {"/root", 0o700}, {"/run", 0o755},
		{"/sbin", 0o755}, {"/sys", 0o755}, {"/tmp", 0o777 | fs.ModeSticky},
		{"/usr", 0o755}, {"/usr/bin", 0o755}, {"/usr/lib", 0o755}, {"/usr/sbin", 0o755},
		{"/var", 0o755}, {"/var/tmp", 0o777 | fs.ModeSticky},
	}
	list := []Entry{{Path: "/", Type: Dir, Perm: 0o755}}
	for _, d := range dirs {
		list = append(list, Entry{Path: d.path, Type: Dir, Perm: d.perm})
	}
	list = append(list,
		Entry{Path: "/dev/console", Type: CharDev, Perm: 0o600, Major: 5, Minor: 1},
		Entry{Path: "/dev/null", Type: CharDev, Perm: 0o666, Major: 1, Minor: 3},
	)
	return &Static{LayerName: "skeleton", List: list}
}
