package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// A ref remembers which blob a key (a URL without a pinned checksum, or a
// release such as "latest") resolved to when it was last fetched online.
// The file name is the hash of the key, so any URL is a safe name.
type ref struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	// File is the stat of a file:// source when it was read, so a later
	// fetch can take the blob without reading the file again.
	File *fileStat `json:"file,omitempty"`
}

// fileStat tells a version of a local file apart without reading it. It is
// trusted only if the file's device, inode, size, mtime and ctime are all
// as recorded, and its times were older than the read by more than
// racyWindow: a file written in the tick it was read may change again
// without its times showing it (git's racy-timestamp rule).
type fileStat struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	CTime int64  `json:"ctime"`
	Read  int64  `json:"read"` // when the read started, Unix nanoseconds
}

// racyWindow is coarser than the timestamps of any file system a source
// file lives on (seconds or two on FAT and some network file systems).
const racyWindow = int64(2 * time.Second)

func statOf(fi os.FileInfo, read time.Time) *fileStat {
	st := fi.Sys().(*syscall.Stat_t)
	return &fileStat{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Read: read.UnixNano()}
}

func (c *Cache) refPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, "refs", hex.EncodeToString(sum[:]))
}

// lookupRef returns the blob a key was last resolved to, if both the ref
// and the blob are still in the cache.
func (c *Cache) lookupRef(key string) (string, bool) {
	r, ok := c.readRef(key)
	if !ok {
		return "", false
	}
	return c.blob(r.SHA256)
}

// lookupFile returns the blob that the file:// URL key gave when its file,
// at path, was last read, if the file's stat shows it unchanged since.
func (c *Cache) lookupFile(key, path string) (string, bool) {
	r, ok := c.readRef(key)
	if !ok || r.File == nil {
		return "", false
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	now, was := statOf(fi, time.Time{}), *r.File
	now.Read = was.Read
	if *now != was || max(was.MTime, was.CTime) >= was.Read-racyWindow {
		return "", false
	}
	return c.blob(r.SHA256)
}

func (c *Cache) readRef(key string) (ref, bool) {
	data, err := os.ReadFile(c.refPath(key))
	if err != nil {
		return ref{}, false
	}
	var r ref
	if json.Unmarshal(data, &r) != nil || r.Key != key {
		return ref{}, false
	}
	h, err := normalizeHex(r.SHA256)
	if err != nil || h == "" {
		return ref{}, false
	}
	r.SHA256 = h
	return r, true
}

// writeRef records key → blob, replacing the file atomically so a reader
// never sees half a record.
func (c *Cache) writeRef(key, sha string, file *fileStat) error {
	data, err := json.Marshal(ref{Key: key, SHA256: sha, File: file})
	if err != nil {
		return err
	}
	var undo undoList
	defer undo.run()
	dst := c.refPath(key)
	tmp, err := undo.createTemp(filepath.Join(c.Dir, "tmp"))
	if err != nil {
		return fmt.Errorf("recording %s in the cache: %w", key, err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = undo.mkdirs(filepath.Dir(dst))
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("recording %s in the cache: %w", key, err)
	}
	undo.commit()
	return nil
}
