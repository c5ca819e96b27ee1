package packer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// lzopBlocks splits what lzop wrote into its LZO1X blocks and their
// uncompressed sizes, skipping stored blocks.
func lzopBlocks(t testing.TB, file []byte) (blocks [][]byte, sizes []int) {
	t.Helper()
	raw := bufio.NewReader(bytes.NewReader(file))
	if err := lzoHeader(raw); err != nil {
		t.Fatalf("lzop header: %v", err)
	}
	for {
		var w [12]byte
		if _, err := io.ReadFull(raw, w[:4]); err != nil {
			t.Fatalf("lzop block: %v", err)
		}
		dst := binary.BigEndian.Uint32(w[:4])
		if dst == 0 {
			return blocks, sizes
		}
		io.ReadFull(raw, w[4:])
		src := make([]byte, binary.BigEndian.Uint32(w[4:8]))
		if _, err := io.ReadFull(raw, src); err != nil {
			t.Fatalf("lzop block data: %v", err)
		}
		if len(src) < int(dst) {
			blocks, sizes = append(blocks, src), append(sizes, int(dst))
		}
	}
}

// FuzzLZO1X feeds arbitrary blocks to the LZO1X decoder, seeded with real
// lzop blocks: it may refuse them, but must not panic or write past the
// block's size, and the seeds must decode to what lzop was given.
func FuzzLZO1X(f *testing.F) {
	requireTool(f, "lzop", "lzop")
	var plain bytes.Buffer
	plain.Write(pack(f, viewOf(f, richLayer()), None))
	for i := range 20000 {
		plain.WriteString([]string{"abc", "abcabc", "x", "\x00\x00\x00\x00"}[i%4])
	}
	file := run(f, plain.Bytes(), "lzop", "-c")
	blocks, sizes := lzopBlocks(f, file)
	if len(blocks) == 0 {
		f.Fatal("lzop stored every block: the seed data compresses")
	}
	var got []byte
	for i, b := range blocks {
		dst := make([]byte, sizes[i])
		n, err := lzo1xDecompress(b, dst)
		if err != nil || n != sizes[i] {
			f.Fatalf("lzop block %d: %d bytes, %v", i, n, err)
		}
		got = append(got, dst...)
		f.Add(b, uint32(sizes[i]))
	}
	if !bytes.HasPrefix(plain.Bytes(), got[:min(len(got), lzoBlock)]) {
		f.Fatal("the first lzop block decodes to other bytes than lzop was given")
	}
	f.Add([]byte{0x11, 0, 0}, uint32(0))
	f.Add([]byte{17, 0, 0x15, 'a', 'b', 'c', 'd', 0x11, 0, 0}, uint32(4))
	f.Fuzz(func(t *testing.T, src []byte, size uint32) {
		size %= lzoBlock + 1
		dst := make([]byte, size)
		n, err := lzo1xDecompress(src, dst)
		if err == nil && (n < 0 || n > int(size)) {
			t.Fatalf("decoded %d bytes into a block of %d", n, size)
		}
	})
}

// TestLZO1XEndMarker: the kernel ends a block only at the three bytes
// 11 00 00 (a distance-16384 match of length 3); a marker of another
// length is "Compressed data violation" there, so here too.
func TestLZO1XEndMarker(t *testing.T) {
	for _, tc := range []struct {
		src  []byte
		good bool
	}{
		{[]byte{18, 'a', 0x11, 0, 0}, true},
		{[]byte{18, 'a', 0x11, 3, 0}, true}, // the two low bits are not looked at
		{[]byte{18, 'a', 0x12, 0, 0}, false},
		{[]byte{18, 'a', 0x10, 1, 0, 0}, false},
	} {
		dst := make([]byte, 1)
		n, err := lzo1xDecompress(tc.src, dst)
		if good := err == nil && n == 1 && dst[0] == 'a'; good != tc.good {
			t.Errorf("% x: %d bytes, %v; want accepted %v", tc.src, n, err, tc.good)
		}
	}
}
