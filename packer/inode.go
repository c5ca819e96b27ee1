package packer

import (
	"hash/fnv"
	"math"
)

// inodes hands out inode numbers derived from the archive name rather than
// from the position in the walk. Counting in walk order would renumber every
// record after an added file, and a renumbered record is new bytes that must
// be compressed again; a hash keeps the other records byte for byte. The
// numbers are still unique within the archive (a collision moves to the next
// free number, in walk order) and depend only on the names, so the archive
// stays reproducible. Only hard links (nlink > 1) are ever matched by
// number, by the kernel and by GNU cpio, and those share one on purpose.
type inodes map[uint64]bool

func (u inodes) assign(name string) uint64 {
	ino := nameHash(name)%math.MaxUint32 + 1
	for u[ino] {
		ino = ino%math.MaxUint32 + 1
	}
	u[ino] = true
	return ino
}

func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}
