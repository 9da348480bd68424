package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Compression of the layers the builder writes.
const (
	// Zstd layers (application/vnd.oci.image.layer.v1.tar+zstd) are smaller and
	// unpack faster than gzip ones; containerd 2 reads them.
	Zstd = "zstd"
	// Gzip layers (application/vnd.oci.image.layer.v1.tar+gzip) are readable
	// by every runtime.
	Gzip = "gzip"
)

// epoch is the modification time of every entry: with sorted entries and
// uid/gid 0 it makes a layer a function of its content only.
var epoch = time.Unix(0, 0).UTC()

// entry is one file, directory or symlink of a layer.
type entry struct {
	// name is the path without a leading '/'; directories end with '/'.
	name string
	mode int64
	// link is the target of a symlink; empty for other entries.
	link string
	// data is the content of a small file.
	data []byte
	// path names a host file to copy instead of data.
	path string
}

func dir(name string, mode int64) entry {
	return entry{name: strings.TrimSuffix(name, "/") + "/", mode: mode}
}

func (e entry) isDir() bool { return strings.HasSuffix(e.name, "/") }

// writeTar writes entries as a deterministic tar stream: sorted by name,
// owned by 0:0, mtime 0, no user or group names.
func writeTar(w io.Writer, entries []entry) error {
	entries = append([]entry(nil), entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	for i := 1; i < len(entries); i++ {
		if entries[i].name == entries[i-1].name {
			return fmt.Errorf("layer: %s is listed twice", entries[i].name)
		}
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		// USTAR keeps the headers minimal; PAX only for long names.
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatUSTAR}
		if len(h.Name) > 100 || len(e.link) > 100 {
			h.Format = tar.FormatPAX
		}
		var src io.Reader
		var f *os.File
		switch {
		case e.isDir():
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.path != "":
			var err error
			if f, err = os.Open(e.path); err != nil {
				return fmt.Errorf("layer: %w", err)
			}
			st, err := f.Stat()
			if err == nil && !st.Mode().IsRegular() {
				err = fmt.Errorf("%s is not a regular file", e.path)
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("layer: %w", err)
			}
			h.Typeflag, h.Size, src = tar.TypeReg, st.Size(), f
		default:
			h.Typeflag, h.Size, src = tar.TypeReg, int64(len(e.data)), bytes.NewReader(e.data)
		}
		err := tw.WriteHeader(h)
		if err == nil && src != nil {
			var n int64
			n, err = io.Copy(tw, src)
			if err == nil && n != h.Size {
				err = fmt.Errorf("changed while being read")
			}
		}
		if f != nil {
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("layer: %s: %w", e.name, err)
		}
	}
	return tw.Close()
}

// compressor returns a writer compressing into w, deterministically, and the
// layer media type.
func compressor(w io.Writer, compression string) (io.WriteCloser, types.MediaType, error) {
	switch compression {
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		return zw, types.OCILayer, err
	case Zstd, "":
		// One goroutine: the output does not depend on scheduling.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return zw, types.OCILayerZStd, err
	}
	return nil, "", fmt.Errorf("unknown layer compression %q (want %q or %q)", compression, Zstd, Gzip)
}

// countingHash counts and hashes what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func newCountingHash() *countingHash { return &countingHash{h: sha256.New()} }

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func (c *countingHash) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", c.h.Sum(nil))}
}

// diffID returns the sha256 of the uncompressed tar of entries.
func diffID(entries []entry) (v1.Hash, error) {
	h := newCountingHash()
	if err := writeTar(h, entries); err != nil {
		return v1.Hash{}, err
	}
	return h.sum(), nil
}

// layer is a compressed layer whose digests are known: its compressed bytes
// are in memory or in a file.
type layer struct {
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
	compression    string
	data           []byte // compressed content, or
	file           string // the file holding it
}

var _ v1.Layer = (*layer)(nil)

// memoryLayer builds the layer of entries in memory.
func memoryLayer(entries []entry, compression string) (*layer, error) {
	var buf bytes.Buffer
	l, err := writeLayer(&buf, entries, compression)
	if err != nil {
		return nil, err
	}
	l.data = buf.Bytes()
	return l, nil
}

// fileLayer builds the layer of entries into a new file in dir.
func fileLayer(dir string, entries []entry, compression string) (*layer, error) {
	f, err := os.CreateTemp(dir, "octo-layer-*")
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	l, err := writeLayer(f, entries, compression)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	l.file = f.Name()
	return l, nil
}

func writeLayer(w io.Writer, entries []entry, compression string) (*layer, error) {
	compressed := newCountingHash()
	zw, mt, err := compressor(io.MultiWriter(w, compressed), compression)
	if err != nil {
		return nil, err
	}
	uncompressed := newCountingHash()
	if err := writeTar(io.MultiWriter(zw, uncompressed), entries); err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("layer: compress: %w", err)
	}
	return &layer{digest: compressed.sum(), diffID: uncompressed.sum(), size: compressed.n, mediaType: mt, compression: compression}, nil
}

func (l *layer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *layer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *layer) Size() (int64, error)                { return l.size, nil }
func (l *layer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

func (l *layer) Compressed() (io.ReadCloser, error) {
	if l.file != "" {
		return os.Open(l.file)
	}
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

func (l *layer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	if l.compression == Gzip {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return closers{zr, rc}, nil
	}
	zr, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, err
	}
	return closers{zr.IOReadCloser(), rc}, nil
}

// closers reads from the first and closes all.
type closers []io.ReadCloser

func (c closers) Read(p []byte) (int, error) { return c[0].Read(p) }

func (c closers) Close() error {
	var err error
	for _, x := range c {
		if e := x.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// remove deletes the layer's file, if any.
func (l *layer) remove() {
	if l.file != "" {
		os.Remove(l.file)
	}
}
