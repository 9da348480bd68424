// Package packed writes the binaries octo carries inside itself to disk.
//
// `make build` stores each one zstd-compressed beside the SHA-256 of its
// uncompressed bytes (<name>.zst and <name>.sha256, see
// internal/workerd/compress). A Binary is extracted once: when the file on
// disk already has that SHA-256, Extract only hashes it, and a file this
// process has hashed or written is not hashed again while its size and
// modification time stay the same. Nothing is decompressed on that path.
package packed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ErrNotEmbedded means the binary's files are not in its FS: octo was
// compiled without `make build`.
var ErrNotEmbedded = errors.New("not embedded")

// Binary is one packed binary: Dir of FS holds Name+".zst" and
// Name+".sha256" (Dir empty: its root).
type Binary struct {
	FS   fs.FS
	Dir  string
	Name string
}

// file is the path in FS of the binary's file with suffix.
func (b Binary) file(suffix string) string { return path.Join(b.Dir, b.Name+suffix) }

// SHA256 returns the hex SHA-256 of the uncompressed binary.
func (b Binary) SHA256() (string, error) {
	data, err := fs.ReadFile(b.FS, b.file(".sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", b.Name, ErrNotEmbedded)
	}
	if err != nil {
		return "", err
	}
	sum := strings.TrimSpace(string(data))
	if len(sum) != 64 {
		return "", fmt.Errorf("%s: embedded %s.sha256 is malformed: %q", b.Name, b.Name, sum)
	}
	return sum, nil
}

// Embedded reports whether both of the binary's files are there.
func (b Binary) Embedded() bool {
	if _, err := b.SHA256(); err != nil {
		return false
	}
	_, err := fs.Stat(b.FS, b.file(".zst"))
	return err == nil
}

// Extract writes the binary to dir/Name (mode 0755) unless a file with its
// SHA-256 is already there, and returns the file's path. Concurrent calls
// are safe: the file is replaced by an atomic rename, so a process already
// running the old file keeps it.
func (b Binary) Extract(dir string) (string, error) {
	want, err := b.SHA256()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, b.Name)
	if ok, err := upToDate(path, want); err != nil {
		return "", fmt.Errorf("extract %s: %w", b.Name, err)
	} else if ok {
		return path, nil
	}
	if err := b.write(path, want); err != nil {
		return "", fmt.Errorf("extract %s: %w", b.Name, err)
	}
	remember(path, want)
	return path, nil
}

// write decompresses the binary into path, checking its SHA-256.
func (b Binary) write(dst, want string) error {
	zf, err := b.FS.Open(b.file(".zst"))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotEmbedded
	}
	if err != nil {
		return err
	}
	defer zf.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+b.Name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	dec, err := zstd.NewReader(zf, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		tmp.Close()
		return err
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), dec); err != nil {
		tmp.Close()
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		tmp.Close()
		return fmt.Errorf("the embedded binary has sha256 %s, expected %s; rebuild with `make build`", got, want)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// verified remembers the files this process has hashed or written, so that
// repeated Extract calls do not read ~90 MB each time. It is process-wide
// as the files are.
var verified sync.Map // path -> fileStamp

type fileStamp struct {
	sum     string
	size    int64
	modTime time.Time
}

// upToDate reports whether path is an executable file with SHA-256 want.
func upToDate(path, want string) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return false, nil
	}
	if v, ok := verified.Load(path); ok {
		s := v.(fileStamp)
		if s.sum == want && s.size == st.Size() && s.modTime.Equal(st.ModTime()) {
			return true, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return false, nil // unreadable: rewrite it
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, nil
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return false, nil
	}
	verified.Store(path, fileStamp{sum: want, size: st.Size(), modTime: st.ModTime()})
	return true, nil
}

func remember(path, sum string) {
	if st, err := os.Stat(path); err == nil {
		verified.Store(path, fileStamp{sum: sum, size: st.Size(), modTime: st.ModTime()})
	}
}
