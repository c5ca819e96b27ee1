package packer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/volantvm/fledge/overlay"
)

// Artifact is an existing initramfs opened as a read-only layer. Its files
// are served from the decompressed archive stream (in memory, or in a cache
// file for large archives); nothing is extracted.
type Artifact struct {
	path    string
	name    string
	entries []overlay.Entry
	closer  io.Closer
	// members and stream are the archive records and the decompressed
	// stream they point into, which a re-pack copies from (repack.go).
	members []member
	stream  io.ReaderAt
	// sum is the file's sha256 in hex when the open read it to find its
	// stream in the cache; "" without a cache.
	sum string
}

var _ overlay.Layer = (*Artifact)(nil)

// SHA256 is the artifact file's sha256 in hex as it was opened, or "" when
// it was opened without a cache folder and so not hashed.
func (a *Artifact) SHA256() string { return a.sum }

// Name implements overlay.Layer.
func (a *Artifact) Name() string { return a.name }

// Entries implements overlay.Layer.
func (a *Artifact) Entries() ([]overlay.Entry, error) { return a.entries, nil }

// Close releases the stream; the entries' contents are unreadable after.
func (a *Artifact) Close() error {
	if a.closer == nil {
		return nil
	}
	return a.closer.Close()
}

// OpenArtifact opens a .cpio, .cpio.gz, .cpio.zst or .cpio.xz, including the kernel's
// concatenated form (uncompressed early archives, then a compressed one).
// The format is recognised by content, not by name. Decompressed streams
// larger than 16 MiB are kept in cacheDir/streams/<sha256 of the
// artifact>.cpio and reused by the next open; with an empty cacheDir they
// go to an unnamed temporary file.
// The layer is named "artifact".
func OpenArtifact(path, cacheDir string) (*Artifact, error) {
	return OpenArtifactAs(path, cacheDir, "artifact")
}

// OpenArtifactAs is OpenArtifact naming the layer layer, such as the base
// of a recipe: its entries record layer and path as their provenance.
func OpenArtifactAs(path, cacheDir, layer string) (*Artifact, error) {
	a, err := openArtifact(path, cacheDir, layer)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", path, err)
	}
	return a, nil
}

func openArtifact(path, cacheDir, layer string) (*Artifact, error) {
	// One open file for the hash and the decoding: opened twice, an
	// artifact replaced in between would be cached under the other's hash.
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cache, sum := "", ""
	if cacheDir != "" {
		if sum, err = readerSHA256(f); err != nil {
			return nil, err
		}
		cache = filepath.Join(cacheDir, "streams", sum+".cpio")
		if a, err := openCached(path, layer, cache); err == nil {
			a.sum = sum
			return a, nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	k := &sink{cache: cache, limit: streamLimit(fi.Size())}
	ms, _, err := decode(f, k)
	if err != nil {
		k.abort()
		return nil, err
	}
	stream, closer, err := k.finish()
	if err != nil {
		k.abort()
		return nil, err
	}
	a, err := newArtifact(path, layer, ms, stream, closer)
	if err != nil {
		return nil, err
	}
	a.sum = sum
	return a, nil
}

// openCached reads the index from a stream cached by an earlier open. Any
// failure (absent, unreadable, damaged) sends the caller back to the
// artifact itself.
func openCached(path, layer, cache string) (*Artifact, error) {
	f, err := os.Open(cache)
	if err != nil {
		return nil, err
	}
	s := &scanner{src: bufio.NewReaderSize(f, readBuf), sink: io.Discard}
	if err := s.archives(); err != nil || len(s.members) == 0 {
		f.Close()
		os.Remove(cache)
		return nil, fmt.Errorf("damaged stream cache %s: %v", cache, err)
	}
	return newArtifact(path, layer, s.members, f, f)
}

func newArtifact(path, layer string, ms []member, stream io.ReaderAt, closer io.Closer) (*Artifact, error) {
	ents, err := entries(ms, stream, layer, path)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, err
	}
	return &Artifact{path: path, name: layer, entries: ents, closer: closer, members: ms, stream: stream}, nil
}

func readerSHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// openRegular opens a regular file for reading. It opens without blocking
// and checks the type first, so a FIFO or device given as an artifact is
// refused instead of hanging the command or reading forever.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %v, not a regular file", path, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// IsArtifact reports whether path holds a newc archive, plain or in any
// compression the kernel reads, judged by content so a recipe is never
// mistaken for one whatever its name.
func IsArtifact(path string) bool {
	f, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, readBuf)
	head, _ := br.Peek(len(magicLZO))
	if bytes.HasPrefix(head, magicNewc) {
		return true
	}
	format := sniff(head)
	if format == nil {
		return false
	}
	r, release, err := format.open(br)
	if err != nil {
		return false
	}
	defer release()
	inner := make([]byte, len(magicNewc))
	_, err = io.ReadFull(r, inner)
	return err == nil && bytes.Equal(inner, magicNewc)
}

// Segments lists the archives and compressed streams of the artifact at
// path, in the order the kernel unpacks them.
func Segments(path string) ([]Segment, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	_, segs, err := decode(f, &sink{limit: streamLimit(fi.Size()), discard: true})
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", path, err)
	}
	return segs, nil
}
