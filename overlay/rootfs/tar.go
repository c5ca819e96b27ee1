package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/volantvm/fledge/overlay"
)

// LayerName is the provenance of every entry of a Dockerfile root file system.
const LayerName = "rootfs"

// tarLayer is a root file system read from an uncompressed tar without
// extracting it: regular files are sections of the tar file itself, so the
// layer costs one pass over the headers and no disk space, and needs no root
// to hold owners, setuid bits or device nodes.
type tarLayer struct {
	entries []overlay.Entry
	// file is held by the layer, not only by its entries' sections: a
	// layer without file data would otherwise let the file be collected
	// and closed, and its inode, the layer's key in opened, be reused.
	file *os.File
}

// Name implements overlay.Layer.
func (l *tarLayer) Name() string { return LayerName }

// Entries implements overlay.Layer.
func (l *tarLayer) Entries() ([]overlay.Entry, error) { return l.entries, nil }

// opened remembers the layers of tar files already open, so a process that
// assembles the same stack again (a mount, a watch loop) reuses the open
// file instead of opening one more each time.
var opened = struct {
	sync.Mutex
	layers map[fileID]*tarLayer
}{layers: map[fileID]*tarLayer{}}

type fileID struct{ dev, ino uint64 }

// OpenTar reads the tar at path as the rootfs layer. The file stays open for
// the life of the process, because file contents are read from it lazily;
// cache files are replaced by rename, never rewritten, so the open file keeps
// the snapshot the layer was built from.
func OpenTar(path string) (overlay.Layer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rootfs tar: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("rootfs tar: %w", err)
	}
	id := fileID{uint64(st.Dev), st.Ino}
	opened.Lock()
	defer opened.Unlock()
	if l, ok := opened.layers[id]; ok {
		f.Close()
		return l, nil
	}
	ents, err := readTar(f, path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("rootfs tar %s: %w", path, err)
	}
	l := &tarLayer{entries: ents, file: f}
	opened.layers[id] = l
	return l, nil
}

// readTar indexes the tar held by r. source names it in the entries'
// provenance.
func readTar(r io.ReadSeeker, source string) ([]overlay.Entry, error) {
	at, ok := r.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("tar reader must support ReadAt")
	}
	pr := &posReader{r: r}
	tr := tar.NewReader(pr)
	var ents []overlay.Entry
	index := map[string]int{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ents, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading header after %d entries: %w", len(ents), err)
		}
		e, err := tarEntry(hdr, source)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if _, dup := index[e.Path]; dup {
			return nil, fmt.Errorf("entry %q: %s appears twice; expected each path once, as BuildKit's tar exporter writes it", hdr.Name, e.Path)
		}
		switch {
		case hdr.Typeflag == tar.TypeLink:
			if err := linkTo(&e, hdr, ents, index); err != nil {
				return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			ents[index[e.LinkID]].LinkID = e.LinkID
		case e.Type == overlay.Regular:
			e.Content = overlay.Section{R: at, Off: pr.pos, N: hdr.Size}
		}
		index[e.Path] = len(ents)
		ents = append(ents, e)
	}
}

// linkTo makes e a hard link of the earlier regular file hdr.Linkname names.
// The link group is named after that first path.
func linkTo(e *overlay.Entry, hdr *tar.Header, ents []overlay.Entry, index map[string]int) error {
	target, err := tarPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	i, ok := index[target]
	if !ok {
		return fmt.Errorf("hard link to %s, which is not an earlier entry of the tar", target)
	}
	t := ents[i]
	if t.Type != overlay.Regular {
		return fmt.Errorf("hard link to %s, a %s; expected a regular file", target, t.Type)
	}
	e.Type = overlay.Regular
	e.Size = t.Size
	e.Content = t.Content
	e.LinkID = target
	if t.LinkID != "" {
		e.LinkID = t.LinkID
	}
	return nil
}

// tarEntry converts a header into an entry, content aside.
func tarEntry(hdr *tar.Header, source string) (overlay.Entry, error) {
	p, err := tarPath(hdr.Name)
	if err != nil {
		return overlay.Entry{}, err
	}
	if hdr.Mode < 0 || hdr.Mode > 0o7777|0o170000 {
		return overlay.Entry{}, fmt.Errorf("mode %#o out of range", hdr.Mode)
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return overlay.Entry{}, fmt.Errorf("negative owner %d:%d", hdr.Uid, hdr.Gid)
	}
	// The type comes from the type flag; the mode contributes only the
	// permission, setuid, setgid and sticky bits.
	_, perm, err := overlay.FromUnixMode(uint32(hdr.Mode&0o7777) | 0o100000)
	if err != nil {
		return overlay.Entry{}, err
	}
	e := overlay.Entry{
		Path: p, Perm: perm, UID: hdr.Uid, GID: hdr.Gid,
		MTime: hdr.ModTime.UTC(), Layer: LayerName, Source: source,
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return overlay.Entry{}, fmt.Errorf("sparse file; expected plain file data, as BuildKit's tar exporter writes it")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeLink:
		e.Type, e.Size = overlay.Regular, hdr.Size
	case tar.TypeDir:
		e.Type = overlay.Dir
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return overlay.Entry{}, fmt.Errorf("symlink target %q is empty or holds a NUL byte", hdr.Linkname)
		}
		e.Type, e.Linkname = overlay.Symlink, hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
			return overlay.Entry{}, fmt.Errorf("device number %d,%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		e.Type = overlay.CharDev
		if hdr.Typeflag == tar.TypeBlock {
			e.Type = overlay.BlockDev
		}
		e.Major, e.Minor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	case tar.TypeFifo:
		e.Type = overlay.FIFO
	default:
		return overlay.Entry{}, fmt.Errorf("tar entry type %q is not supported; expected a file, directory, link or device", hdr.Typeflag)
	}
	if p == "/" && e.Type != overlay.Dir {
		return overlay.Entry{}, fmt.Errorf("the root must be a directory, found a %s", e.Type)
	}
	return e, nil
}

// tarPath turns a tar name ("bin/sh", "./bin/", ".") into a guest path. BuildKit
// writes relative names; an absolute name, a ".." component or a NUL byte
// can only come from a hostile or broken archive and is refused, not fixed.
func tarPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute name %q; expected a path relative to the image root", name)
	}
	if name == "" || name == "." || name == "./" {
		return "/", nil
	}
	return overlay.CleanPath(name)
}

// posReader tracks the offset of the underlying file, so the position after a
// header is the offset of that entry's data. It keeps Seek so archive/tar
// skips file data instead of reading it.
type posReader struct {
	r   io.ReadSeeker
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}
