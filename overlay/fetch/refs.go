package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// A ref remembers which blob a key (a URL without a pinned checksum, or a
// release such as "latest") resolved to when it was last fetched online.
// The file name is the hash of the key, so any URL is a safe name.
type ref struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

func (c *Cache) refPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, "refs", hex.EncodeToString(sum[:]))
}

// lookupRef returns the blob a key was last resolved to, if both the ref
// and the blob are still in the cache.
func (c *Cache) lookupRef(key string) (string, bool) {
	data, err := os.ReadFile(c.refPath(key))
	if err != nil {
		return "", false
	}
	var r ref
	if json.Unmarshal(data, &r) != nil || r.Key != key {
		return "", false
	}
	h, err := normalizeHex(r.SHA256)
	if err != nil || h == "" {
		return "", false
	}
	return c.blob(h)
}

// writeRef records key → blob, replacing the file atomically so a reader
// never sees half a record.
func (c *Cache) writeRef(key, sha string) error {
	data, err := json.Marshal(ref{Key: key, SHA256: sha})
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
