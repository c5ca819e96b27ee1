package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// The decoders are bounded, because a module tree is input like any
// other: no module is larger than maxModule decompressed (Debian's
// largest, amdgpu, is about 20 MiB), and no decoder may allocate more
// than maxWindow for its dictionary, whatever a header asks for. The
// kernel itself compresses modules with a 1 MiB (xz) or 128 KiB..8 MiB
// (zstd) window.
const (
	maxModule = 256 << 20
	maxWindow = 64 << 20
)

var errTooLarge = fmt.Errorf("decompresses to more than %d MiB; not a kernel module", maxModule>>20)

// decompress reads the module file f, named path, whole, decompressing
// .ko.xz, .ko.zst and .ko.gz.
func decompress(f *os.File, path string) ([]byte, error) {
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".ko.gz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = gz
	case strings.HasSuffix(path, ".ko.zst"):
		dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(maxModule))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer dec.Close()
		r = dec
	case strings.HasSuffix(path, ".ko.xz"):
		if err := checkXzDicts(f); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		xr, err := xz.ReaderConfig{SingleStream: true}.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = xr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxModule+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxModule {
		return nil, errTooLarge
	}
	return data, nil
}

// checkXzDicts reads the index at the end of a one-stream xz file and the
// header of every block it lists, and refuses a block whose LZMA2
// dictionary exceeds maxWindow: the xz reader allocates what a block
// header asks for (up to 4 GiB) and takes no limit.
func checkXzDicts(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const headerLen, footerLen = 12, 12
	if fi.Size() < headerLen+footerLen {
		return errors.New("file too short for an xz stream")
	}
	footer := make([]byte, footerLen)
	if _, err := f.ReadAt(footer, fi.Size()-footerLen); err != nil {
		return err
	}
	if !bytes.Equal(footer[10:], []byte("YZ")) {
		return errors.New("no xz stream footer at the end of the file (stream padding or several streams are not read)")
	}
	indexLen := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	indexAt := fi.Size() - footerLen - indexLen
	if indexAt < headerLen || indexLen > 1<<20 {
		return errors.New("xz index out of bounds")
	}
	index := make([]byte, indexLen)
	if _, err := f.ReadAt(index, indexAt); err != nil {
		return err
	}
	rd := bytes.NewReader(index[1:])
	n, err := binary.ReadUvarint(rd)
	if index[0] != 0 || err != nil {
		return errors.New("bad xz index")
	}
	var total uint64
	at := int64(headerLen)
	for range n {
		unpadded, err1 := binary.ReadUvarint(rd)
		size, err2 := binary.ReadUvarint(rd)
		if err1 != nil || err2 != nil || unpadded > uint64(indexAt) {
			return errors.New("bad xz index record")
		}
		if total += size; total > maxModule {
			return errTooLarge
		}
		if err := checkXzBlock(f, at, indexAt); err != nil {
			return err
		}
		at += int64((unpadded + 3) &^ 3)
		if at > indexAt {
			return errors.New("xz blocks overlap the index")
		}
	}
	return nil
}

// checkXzBlock checks the dictionary sizes in the block header at off.
func checkXzBlock(f *os.File, off, end int64) error {
	var size [1]byte
	if _, err := f.ReadAt(size[:], off); err != nil {
		return err
	}
	hlen := (int64(size[0]) + 1) * 4
	if size[0] == 0 || off+hlen > end {
		return errors.New("bad xz block header")
	}
	h := make([]byte, hlen)
	if _, err := f.ReadAt(h, off); err != nil {
		return err
	}
	rd := bytes.NewReader(h[2 : hlen-4])
	flags := h[1]
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, err := binary.ReadUvarint(rd); err != nil {
				return errors.New("bad xz block header")
			}
		}
	}
	for range int(flags&3) + 1 {
		id, err1 := binary.ReadUvarint(rd)
		plen, err2 := binary.ReadUvarint(rd)
		if err1 != nil || err2 != nil || plen > uint64(rd.Len()) {
			return errors.New("bad xz filter flags")
		}
		props := make([]byte, plen)
		if _, err := io.ReadFull(rd, props); err != nil {
			return err
		}
		if id == 0x21 && plen == 1 && lzma2Dict(props[0]) > maxWindow {
			return fmt.Errorf("a block asks for a %d MiB dictionary, more than the %d MiB allowed", lzma2Dict(props[0])>>20, maxWindow>>20)
		}
	}
	return nil
}

// lzma2Dict decodes the LZMA2 dictionary size byte.
func lzma2Dict(b byte) uint64 {
	if b >= 40 {
		return 1<<32 - 1
	}
	return uint64(2|b&1) << (b/2 + 11)
}
