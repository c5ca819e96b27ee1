package edits

import (
	"sync"

	"golang.org/x/sys/unix"
)

// dirCache keeps descriptors of the layer's folders open by guest path, so
// a change in a folder the last change used opens it with one dup instead
// of an openat for every component from the layer's root: tar x makes a
// dozen changes per file in the same folder. Changes that move or remove
// folders drop what they touched (see touched), and a read of the folder
// afresh drops all (another process may have changed it).
type dirCache struct {
	mu  sync.Mutex
	fds map[string]dirFD
}

// maxCachedDirs bounds the descriptors held; when full, all are dropped.
const maxCachedDirs = 64

// get returns a descriptor of guest folder p that the caller closes.
func (c *dirCache) get(p string) (dirFD, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.fds[p]
	if !ok {
		return -1, false
	}
	fd, err := unix.Dup(int(d))
	if err != nil {
		return -1, false
	}
	return dirFD(fd), true
}

// put remembers d, which the caller keeps, as guest folder p.
func (c *dirCache) put(p string, d dirFD) {
	fd, err := unix.Dup(int(d))
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fds) >= maxCachedDirs {
		c.closeAll()
	}
	if old, ok := c.fds[p]; ok {
		old.close()
	}
	if c.fds == nil {
		c.fds = map[string]dirFD{}
	}
	c.fds[p] = dirFD(fd)
}

// drop forgets p and the folders below it.
func (c *dirCache) drop(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, d := range c.fds {
		if within(k, p) {
			d.close()
			delete(c.fds, k)
		}
	}
}

// clear forgets every folder.
func (c *dirCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeAll()
}

func (c *dirCache) closeAll() {
	for k, d := range c.fds {
		d.close()
		delete(c.fds, k)
	}
}
