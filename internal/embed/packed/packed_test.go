package packed

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/klauspost/compress/zstd"
)

// packedFS is what `make build` embeds for a binary name with content.
func packedFS(t *testing.T, name string, content []byte) fstest.MapFS {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	sum := sha256.Sum256(content)
	return fstest.MapFS{
		name + ".zst":    {Data: enc.EncodeAll(content, nil)},
		name + ".sha256": {Data: []byte(hex.EncodeToString(sum[:]) + "\n")},
	}
}

func TestExtract(t *testing.T) {
	content := []byte("#!/bin/sh\necho packed\n")
	b := Binary{FS: packedFS(t, "tool", content), Name: "tool"}
	if !b.Embedded() {
		t.Fatal("Embedded() = false with both files there")
	}
	dir := filepath.Join(t.TempDir(), "bin")
	p, err := b.Extract(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	st, _ := os.Stat(p)
	if err != nil || string(got) != string(content) || st.Mode().Perm() != 0o755 || p != filepath.Join(dir, "tool") {
		t.Fatalf("extracted %s: %q %v %v", p, got, st.Mode(), err)
	}

	// Up to date, also in a new process (nothing remembered): hashed, not
	// rewritten.
	verified.Clear()
	if _, err := b.Extract(dir); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p)
	if !os.SameFile(st, st2) || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("an up-to-date binary was rewritten")
	}

	// A changed file is replaced, even one this process wrote: its size
	// and modification time changed.
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho tampered with\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Extract(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != string(content) {
		t.Fatalf("a changed binary was kept: %q", got)
	}
	// So is one that lost its executable bit.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Extract(dir); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v after Extract, want 0755", st.Mode())
	}
}

func TestExtractRefusesWhatDoesNotMatchItsSum(t *testing.T) {
	fsys := packedFS(t, "tool", []byte("the real one"))
	other := packedFS(t, "tool", []byte("another one"))
	fsys["tool.zst"] = other["tool.zst"]
	dir := t.TempDir()
	_, err := Binary{FS: fsys, Name: "tool"}.Extract(dir)
	if err == nil || !strings.Contains(err.Error(), "expected") {
		t.Fatalf("Extract of a binary that does not match its sum: %v, want an error", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %d files behind, want none", len(entries))
	}
}

func TestNotEmbedded(t *testing.T) {
	b := Binary{FS: fstest.MapFS{}, Name: "tool"}
	if b.Embedded() {
		t.Fatal("Embedded() = true without files")
	}
	if _, err := b.Extract(t.TempDir()); !errors.Is(err, ErrNotEmbedded) {
		t.Fatalf("Extract: %v, want ErrNotEmbedded", err)
	}
}
