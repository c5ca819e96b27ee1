package packer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"maps"
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
//
// Entries are found by device and inode, not by path: a file moved or
// linked elsewhere is still known, and a lookup hashes two numbers, not a
// path. On disk the index is a snapshot (path) and a journal beside it
// (path + ".log") of the entries recorded or forgotten since, each with
// its checksum: a pack that learned of a few files appends them, and one
// that finds the journal grown past a quarter of the snapshot writes a
// new snapshot.
type statIndex struct {
	path    string
	entries map[fileID]indexEntry
	// changed lists the files recorded or forgotten by this pack.
	changed []fileID
	// snapshot and journal are the sizes of the files read.
	snapshot, journal int64
}

// fileID names a host file: its device and inode.
type fileID struct{ dev, ino uint64 }

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

// indexMagic starts the snapshot. The sums it holds are of chunkSize
// chunks: change the magic whenever chunkSize changes.
var indexMagic = []byte("FLIDX3\n\x00")

func statOf(st *syscall.Stat_t) fileStat {
	return fileStat{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

func (s fileStat) id() fileID { return fileID{s.dev, s.ino} }

// lookup returns the chunk sums recorded for the file with stat st if st
// shows it unchanged since a pack read it, and that read was not racy.
func (x *statIndex) lookup(st fileStat) ([][32]byte, bool) {
	if x == nil {
		return nil, false
	}
	e, ok := x.entries[st.id()]
	if !ok || e.stat != st || e.racy() {
		return nil, false
	}
	return e.sums, true
}

func (e indexEntry) racy() bool {
	return max(e.stat.mtime, e.stat.ctime) >= e.read-int64(racyWindow)
}

// record notes that a pack starting at start read the file with stat st
// and found sums; trusted says the sums came from a trusted entry, which
// then only needs its use noted now and then.
func (x *statIndex) record(st fileStat, sums [][32]byte, trusted bool, start time.Time) {
	now := start.UnixNano()
	read := now
	if e, ok := x.entries[st.id()]; trusted && ok {
		if now-e.used < int64(usedRefresh) {
			return
		}
		read = e.read
	}
	x.entries[st.id()] = indexEntry{stat: st, read: read, used: now, sums: sums}
	x.changed = append(x.changed, st.id())
}

// forget drops what is known of the file st names: it changed while it
// was read.
func (x *statIndex) forget(st fileStat) {
	if _, ok := x.entries[st.id()]; ok {
		delete(x.entries, st.id())
		x.changed = append(x.changed, st.id())
	}
}

// loadStatIndex reads the index at path and its journal; a missing,
// truncated or corrupt snapshot is an empty index, and the journal is read
// up to its first damaged record (it only costs reading files again).
func loadStatIndex(path string) *statIndex {
	x := &statIndex{path: path, entries: map[fileID]indexEntry{}}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < len(indexMagic)+4 || !bytes.Equal(b[:len(indexMagic)], indexMagic) {
		return x
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return x
	}
	entries, ok := decodeIndex(body[len(indexMagic):])
	if !ok {
		return x
	}
	x.entries, x.snapshot = entries, int64(len(b))
	j, _ := os.ReadFile(path + ".log")
	for len(j) >= 8 {
		n := binary.LittleEndian.Uint32(j)
		if uint64(n) > uint64(len(j)-8) {
			break
		}
		rec := j[4 : 4+n]
		if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(j[4+n:]) || !x.apply(rec) {
			break
		}
		j = j[8+n:]
		x.journal += int64(8 + n)
	}
	return x
}

// apply takes one journal record: an entry, or the id of one forgotten.
func (x *statIndex) apply(rec []byte) bool {
	switch {
	case len(rec) == 1+16 && rec[0] == 'F':
		delete(x.entries, fileID{binary.LittleEndian.Uint64(rec[1:]), binary.LittleEndian.Uint64(rec[9:])})
		return true
	case len(rec) > 1 && rec[0] == 'E':
		e, ok := decodeIndex(rec[1:])
		if ok {
			maps.Copy(x.entries, e)
		}
		return ok
	}
	return false
}

// entryLen is the fixed part of an entry: device, inode, size, mtime,
// ctime, read and used.
const entryLen = 8 * 7

func decodeIndex(b []byte) (map[fileID]indexEntry, bool) {
	// The sums are cut from one slice: one allocation, not one per entry.
	entries := make(map[fileID]indexEntry, len(b)/(entryLen+1+32))
	all := make([][32]byte, 0, len(b)/32)
	for len(b) > 0 {
		if len(b) < entryLen+1 {
			return nil, false
		}
		var f [7]uint64
		for i := range f {
			f[i], b = binary.LittleEndian.Uint64(b), b[8:]
		}
		chunks, k := binary.Uvarint(b)
		// Compared so that no count, however large, wraps around.
		if k <= 0 || chunks > uint64(len(b)-k)/32 {
			return nil, false
		}
		b = b[k:]
		first := len(all)
		for range chunks {
			all = append(all, [32]byte(b))
			b = b[32:]
		}
		st := fileStat{dev: f[0], ino: f[1], size: int64(f[2]), mtime: int64(f[3]), ctime: int64(f[4])}
		entries[st.id()] = indexEntry{stat: st, read: int64(f[5]), used: int64(f[6]), sums: all[first:len(all):len(all)]}
	}
	return entries, true
}

func appendEntry(b []byte, e indexEntry) []byte {
	for _, v := range [...]uint64{e.stat.dev, e.stat.ino, uint64(e.stat.size), uint64(e.stat.mtime), uint64(e.stat.ctime), uint64(e.read), uint64(e.used)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(e.sums)))
	for _, s := range e.sums {
		b = append(b, s[:]...)
	}
	return b
}

// encode is the snapshot as written to disk, without the entries unused
// for indexRetention.
func (x *statIndex) encode(now time.Time) []byte {
	size := len(indexMagic) + 4
	for _, e := range x.entries {
		size += entryLen + binary.MaxVarintLen64 + 32*len(e.sums)
	}
	b := append(make([]byte, 0, size), indexMagic...)
	for _, e := range x.entries {
		if now.UnixNano()-e.used <= int64(indexRetention) {
			b = appendEntry(b, e)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// save writes what this pack changed: appended to the journal while that
// stays under a quarter of the snapshot, else as a new snapshot (by
// write, which puts a file in place whole) with the journal removed. Packs
// saving at once may lose each other's entries, which only costs reading
// those files again: an entry always holds the sums of the stat it names.
func (x *statIndex) save(now time.Time, write func(p string, b ...[]byte) error) error {
	if len(x.changed) == 0 {
		return nil
	}
	var j []byte
	for _, id := range x.changed {
		at := len(j)
		j = append(j, 0, 0, 0, 0)
		if e, ok := x.entries[id]; ok {
			j = appendEntry(append(j, 'E'), e)
		} else {
			j = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(append(j, 'F'), id.dev), id.ino)
		}
		rec := j[at+4:]
		binary.LittleEndian.PutUint32(j[at:], uint32(len(rec)))
		j = binary.LittleEndian.AppendUint32(j, crc32.Checksum(rec, castagnoli))
	}
	if x.snapshot > 0 && (x.journal+int64(len(j)))*4 < x.snapshot {
		f, err := os.OpenFile(x.path+".log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(j)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := write(x.path, x.encode(now)); err != nil {
		return err
	}
	if err := os.Remove(x.path + ".log"); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
