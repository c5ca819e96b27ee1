package packer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"syscall"
	"time"
)

// statIndex remembers, per host file, the stat it had and the sha256 of
// its chunks when a pack last read it, so the next pack knows a file is
// unchanged without reading it. A file is trusted only when its device,
// inode, size, mtime and ctime are all as recorded, and only when those
// times were older than the pack that read it by more than racyWindow:
// a file written in the same tick as it was read may change again without
// its times showing it (git's racy-timestamp rule). Such a file is read
// again, and recorded again, on the next pack.
type statIndex struct {
	path    string
	entries map[string]indexEntry
	dirty   bool
}

type indexEntry struct {
	stat fileStat
	// read is when the pack that read the file started, used the last
	// pack that relied on the entry (entries unused for indexRetention go).
	read, used int64 // Unix nanoseconds
	sums       [][32]byte
}

// fileStat is what tells a host file's version apart without reading it.
type fileStat struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

const (
	// racyWindow is coarser than the timestamps of any file system fledge
	// reads from (ext4, xfs, btrfs, tmpfs: nanoseconds in the kernel's
	// coarse clock; FAT and some network file systems: seconds or two).
	racyWindow = 2 * time.Second
	// indexRetention drops the entries of trees no longer packed.
	indexRetention = 30 * 24 * time.Hour
	// usedRefresh limits how often an entry's use is written back.
	usedRefresh = 24 * time.Hour
)

// indexMagic starts the index file. The sums it holds are of chunkSize
// chunks: change the magic whenever chunkSize changes.
var indexMagic = []byte("FLIDX2\n\x00")

func statOf(st *syscall.Stat_t) fileStat {
	return fileStat{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// lookup returns the chunk sums recorded for host if st shows it unchanged
// since a pack read it, and that read was not racy.
func (x *statIndex) lookup(host string, st fileStat) ([][32]byte, bool) {
	if x == nil {
		return nil, false
	}
	e, ok := x.entries[host]
	if !ok || e.stat != st || e.racy() {
		return nil, false
	}
	return e.sums, true
}

func (e indexEntry) racy() bool {
	return max(e.stat.mtime, e.stat.ctime) >= e.read-int64(racyWindow)
}

// record notes that a pack starting at start read host with stat st and
// found sums; trusted says the sums came from a trusted entry, which then
// only needs its use noted now and then.
func (x *statIndex) record(host string, st fileStat, sums [][32]byte, trusted bool, start time.Time) {
	now := start.UnixNano()
	read := now
	if e, ok := x.entries[host]; trusted && ok {
		if now-e.used < int64(usedRefresh) {
			return
		}
		read = e.read
	}
	x.entries[host] = indexEntry{stat: st, read: read, used: now, sums: sums}
	x.dirty = true
}

// forget drops what is known of host: it changed while it was read.
func (x *statIndex) forget(host string) {
	if _, ok := x.entries[host]; ok {
		delete(x.entries, host)
		x.dirty = true
	}
}

// loadStatIndex reads the index at path; a missing, truncated or corrupt
// index is an empty one (it only costs reading the files again).
func loadStatIndex(path string) *statIndex {
	x := &statIndex{path: path, entries: map[string]indexEntry{}}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < len(indexMagic)+4 || !bytes.Equal(b[:len(indexMagic)], indexMagic) {
		return x
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return x
	}
	if entries, ok := decodeIndex(body[len(indexMagic):]); ok {
		x.entries = entries
	}
	return x
}

func decodeIndex(b []byte) (map[string]indexEntry, bool) {
	// An entry takes 91 bytes at least. The paths are cut from one string
	// and the sums from one slice: two allocations, not two per entry.
	entries := make(map[string]indexEntry, len(b)/91)
	str := string(b)
	all := make([][32]byte, 0, len(b)/32)
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		// Compared so that no length, however large, wraps around.
		if k <= 0 || n > uint64(len(b)-k) || uint64(len(b)-k)-n < 8*7+1 {
			return nil, false
		}
		at := len(str) - len(b) + k
		host := str[at : at+int(n)]
		b = b[k+int(n):]
		var f [7]uint64
		for i := range f {
			f[i], b = binary.LittleEndian.Uint64(b), b[8:]
		}
		chunks, k := binary.Uvarint(b)
		if k <= 0 || chunks > uint64(len(b)-k)/32 {
			return nil, false
		}
		b = b[k:]
		first := len(all)
		for range chunks {
			all = append(all, [32]byte(b))
			b = b[32:]
		}
		sums := all[first:len(all):len(all)]
		entries[host] = indexEntry{
			stat: fileStat{dev: f[0], ino: f[1], size: int64(f[2]), mtime: int64(f[3]), ctime: int64(f[4])},
			read: int64(f[5]), used: int64(f[6]), sums: sums,
		}
	}
	return entries, true
}

// encode is the index as written to disk, without the entries unused for
// indexRetention.
func (x *statIndex) encode(now time.Time) []byte {
	size := len(indexMagic) + 4
	for host, e := range x.entries {
		size += 2*binary.MaxVarintLen64 + len(host) + 8*7 + 32*len(e.sums)
	}
	b := append(make([]byte, 0, size), indexMagic...)
	for host, e := range x.entries {
		if now.UnixNano()-e.used > int64(indexRetention) {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(host)))
		b = append(b, host...)
		for _, v := range [...]uint64{e.stat.dev, e.stat.ino, uint64(e.stat.size), uint64(e.stat.mtime), uint64(e.stat.ctime), uint64(e.read), uint64(e.used)} {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		b = binary.AppendUvarint(b, uint64(len(e.sums)))
		for _, s := range e.sums {
			b = append(b, s[:]...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}
