// Command compress writes the workerd binary octo embeds: the input compressed
// with zstd, plus the hex SHA-256 of the uncompressed input. `make workerd`
// runs it (go run ./internal/workerd/compress) so a build needs no zstd CLI.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

func main() {
	in := flag.String("in", "", "input file (the stripped workerd binary)")
	out := flag.String("out", "", "output .zst file")
	sum := flag.String("sha256", "", "output file for the hex SHA-256 of the input")
	flag.Parse()
	if *in == "" || *out == "" || *sum == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, *sum); err != nil {
		fmt.Fprintln(os.Stderr, "compress:", err)
		os.Exit(1)
	}
}

func run(in, out, sum string) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), ".workerd-*.zst")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	enc, err := zstd.NewWriter(tmp,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(enc, h), src)
	if err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	hexSum := hex.EncodeToString(h.Sum(nil))
	// The old checksum goes first and the new one is written last: an
	// interrupted run leaves the checksum missing, which make and Extract
	// both notice, never a checksum that does not match the archive.
	if err := os.Remove(sum); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	if err := os.WriteFile(sum+".tmp", []byte(hexSum+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(sum+".tmp", sum); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes -> %s: %d bytes (sha256 %s)\n", in, n, out, st.Size(), hexSum)
	return nil
}
