package store

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestKVKeyEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "a\x00", "ab", "b", "\xff", "\x00", "dir/key 2", "ключ", "🔑",
		strings.Repeat("a", 512), strings.Repeat("\xff", 512)}
	for n := 145; n <= 155; n++ { // 150 bytes = 200 characters: a segment boundary
		keys = append(keys, strings.Repeat("x", n), strings.Repeat("x", n)+"\x00", strings.Repeat("x", n-1)+"y")
	}
	for range 2000 {
		b := make([]byte, 1+r.IntN(512))
		for i := range b {
			b[i] = byte(r.IntN(4) + 'a' - 1) // few distinct bytes: many shared prefixes
		}
		keys = append(keys, string(b))
	}
	maxObject := len(kvValueKey(strings.Repeat("f", 32), strings.Repeat("f", 32), strings.Repeat("a", 512)))
	if maxObject > 1024 {
		t.Errorf("longest object name = %d bytes, S3 allows 1024", maxObject)
	}
	for _, k := range keys {
		enc := encodeKVKey(k)
		if got, err := decodeKVKey(enc); err != nil || got != k {
			t.Fatalf("decode(encode(%q)) = %q, %v", k, got, err)
		}
		for seg := range strings.SplitSeq(enc, "/") {
			if len(seg) > 255 || seg == "" || seg == "." || seg == ".." {
				t.Fatalf("encode(%q) has segment %q", k, seg)
			}
		}
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	byName := slices.Clone(sorted)
	slices.SortFunc(byName, func(a, b string) int { return strings.Compare(encodeKVKey(a), encodeKVKey(b)) })
	if !slices.Equal(sorted, byName) {
		t.Fatal("encoded keys do not sort like the keys")
	}
	for _, p := range []string{"", "a", "ab", "x", strings.Repeat("x", 150), strings.Repeat("x", 151), "a`a", "\xff"} {
		sub, after := kvPrefixRange(p)
		for _, k := range sorted {
			enc := encodeKVKey(k)
			if strings.HasPrefix(k, p) && !strings.HasPrefix(enc, sub) {
				t.Errorf("prefix %q: %q does not start with %q", p, enc, sub)
			}
			if (k >= p) != (enc > after) {
				t.Errorf("prefix %q: key %q start-after %q wrong", p, k, after)
			}
		}
	}
}
