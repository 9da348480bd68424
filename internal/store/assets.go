package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Workers Static Assets: wrangler sends a manifest (path → hash and size),
// uploads the files the server lacks, in buckets, with the session's token,
// and names the completion token in the script's metadata. The files are
// stored once per account, by hash; a version records the manifest's
// digest (apiv1.VersionAssets).
const (
	// MaxAssetFiles bounds a manifest (Cloudflare's documented limit).
	MaxAssetFiles = 20000
	// MaxAssetSize bounds one file (Cloudflare's limit: 25 MiB).
	MaxAssetSize = 25 << 20
	// AssetTokenTTL is how long an upload session's and a completion
	// token stay valid.
	AssetTokenTTL = time.Hour
	// Buckets of an upload session: at most this many files and bytes,
	// so that one request stays well below the API's body limit.
	assetBucketFiles = 100
	assetBucketBytes = 16 << 20
	// MaxAssetPath bounds a manifest path.
	MaxAssetPath = 1024
)

// CodeAssets is the code of refused asset uploads and manifests.
const CodeAssets = 10201

// AssetEntry is one file of a manifest: its hash (32 hex digits, wrangler's
// BLAKE3-based digest) and size in bytes.
type AssetEntry struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// AssetManifest maps each asset's path ("/index.html") to its file.
type AssetManifest map[string]AssetEntry

var assetHashRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Validate refuses manifests Cloudflare refuses: empty, too many files,
// bad paths, hashes or sizes.
func (m AssetManifest) Validate() error {
	if len(m) == 0 {
		return Errorf(Invalid, CodeAssets, "the assets manifest lists no files")
	}
	if len(m) > MaxAssetFiles {
		return Errorf(Invalid, CodeAssets, "the assets manifest lists %d files, at most %d are allowed", len(m), MaxAssetFiles)
	}
	for p, e := range m {
		if !strings.HasPrefix(p, "/") || len(p) > MaxAssetPath || !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\\") ||
			strings.Contains(p, "//") || slices.Contains(strings.Split(p, "/"), "..") {
			return Errorf(Invalid, CodeAssets, "invalid asset path %.100q: paths start with '/' and hold no '..', '//' or '\\'", p)
		}
		if !assetHashRE.MatchString(e.Hash) {
			return Errorf(Invalid, CodeAssets, "asset %.100q has an invalid hash %.40q: want 32 lowercase hex digits", p, e.Hash)
		}
		if e.Size < 0 || e.Size > MaxAssetSize {
			return Errorf(Invalid, CodeAssets, "asset %.100q is %d bytes, at most %d (25 MiB) are allowed", p, e.Size, MaxAssetSize)
		}
	}
	return nil
}

// Digest is the SHA-256 of the manifest's canonical JSON (sorted paths).
func (m AssetManifest) Digest() string {
	b, _ := json.Marshal(m) // encoding/json sorts map keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Hashes returns the distinct hashes of the manifest, sorted.
func (m AssetManifest) Hashes() []string {
	set := map[string]bool{}
	for _, e := range m {
		set[e.Hash] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// AssetsPrefix is where an account's assets live in S3.
func AssetsPrefix(account string) string { return accountPrefix(account) + "assets/" }

// AssetBlobKey is the S3 key of an account's asset file by hash.
func AssetBlobKey(account, hash string) string { return AssetsPrefix(account) + "files/" + hash }

// AssetManifestKey is the S3 key of an account's manifest by digest.
func AssetManifestKey(account, digest string) string {
	return AssetsPrefix(account) + "manifests/" + digest + ".json"
}

// AssetSession is the answer to an upload session: the token to upload
// with (or, when nothing is missing, the completion token) and the hashes
// to upload, grouped in buckets (one request each).
type AssetSession struct {
	JWT     string     `json:"jwt"`
	Buckets [][]string `json:"buckets"`
}

// assetTokens signs and checks the session and completion tokens: HS256
// JWTs with a key of the process (a restart ends the open sessions, as
// their hour would).
type assetTokens struct {
	once sync.Once
	key  []byte
}

// Kinds of asset tokens.
const (
	assetTokenUpload     = "upload"
	assetTokenCompletion = "completion"
)

type assetClaims struct {
	Kind     string `json:"kind"`
	Account  string `json:"account"`
	Manifest string `json:"manifest"`
	Exp      int64  `json:"exp"`
}

func (t *assetTokens) keyBytes() []byte {
	t.once.Do(func() {
		if t.key == nil {
			t.key = make([]byte, 32)
			_, _ = rand.Read(t.key)
		}
	})
	return t.key
}

func (t *assetTokens) sign(c assetClaims) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(c)
	msg := head + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, t.keyBytes())
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

// errAssetToken is the refusal of a token that is not one of ours, expired,
// of another kind or account.
var errAssetToken = errors.New("invalid assets token")

func (t *assetTokens) check(token, kind, account string, now time.Time) (assetClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return assetClaims{}, errAssetToken
	}
	mac := hmac.New(sha256.New, t.keyBytes())
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return assetClaims{}, errAssetToken
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c assetClaims
	if err != nil || json.Unmarshal(body, &c) != nil {
		return assetClaims{}, errAssetToken
	}
	if c.Kind != kind || c.Account != account {
		return assetClaims{}, errAssetToken
	}
	if now.Unix() > c.Exp {
		return assetClaims{}, fmt.Errorf("%w: it expired at %s", errAssetToken, time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// OpenAssetSession starts an upload of the manifest's files for a script:
// it stores the manifest and answers which files the account lacks.
func (s *Store) OpenAssetSession(ctx context.Context, a Account, script string, m AssetManifest) (AssetSession, error) {
	if err := ValidScriptName(script); err != nil {
		return AssetSession{}, err
	}
	if err := m.Validate(); err != nil {
		return AssetSession{}, err
	}
	digest := m.Digest()
	b, _ := json.Marshal(m)
	if err := s.blobs.Put(ctx, AssetManifestKey(a.ID, digest), b, "application/json", nil); err != nil {
		return AssetSession{}, err
	}
	missing, err := s.missingAssets(ctx, a, m)
	if err != nil {
		return AssetSession{}, err
	}
	exp := s.now().Add(AssetTokenTTL).Unix()
	claims := assetClaims{Kind: assetTokenCompletion, Account: a.ID, Manifest: digest, Exp: exp}
	if len(missing) > 0 {
		claims.Kind = assetTokenUpload
	}
	size := map[string]int64{}
	for _, e := range m {
		size[e.Hash] = e.Size
	}
	buckets := [][]string{}
	var cur []string
	var bytes int64
	for _, h := range missing {
		if len(cur) > 0 && (len(cur) >= assetBucketFiles || bytes+size[h] > assetBucketBytes) {
			buckets, cur, bytes = append(buckets, cur), nil, 0
		}
		cur, bytes = append(cur, h), bytes+size[h]
	}
	if len(cur) > 0 {
		buckets = append(buckets, cur)
	}
	return AssetSession{JWT: s.assetTokens.sign(claims), Buckets: buckets}, nil
}

// missingAssets lists the manifest's hashes the account has no file of.
func (s *Store) missingAssets(ctx context.Context, a Account, m AssetManifest) ([]string, error) {
	have := map[string]bool{}
	prefix := AssetsPrefix(a.ID) + "files/"
	if err := s.blobs.Walk(ctx, prefix, func(key string, _ int64) { have[strings.TrimPrefix(key, prefix)] = true }); err != nil {
		return nil, fmt.Errorf("list asset files: %w", err)
	}
	var out []string
	for _, h := range m.Hashes() {
		if !have[h] {
			out = append(out, h)
		}
	}
	return out, nil
}

// AssetFile is one uploaded file: its content and media type ("" for
// wrangler's application/null: served without a Content-Type).
type AssetFile struct {
	Data        []byte
	ContentType string
}

// CheckAssetUploadToken refuses a token that is not an open upload
// session of the account: the API checks it before reading a body.
func (s *Store) CheckAssetUploadToken(a Account, token string) error {
	if _, err := s.assetTokens.check(token, assetTokenUpload, a.ID, s.now()); err != nil {
		return Errorf(Unauthorized, CodeAuthentication, "Authentication error: %v: open an upload session first (wrangler deploy does)", err)
	}
	return nil
}

// UploadAssets stores files (by hash) of the session token's manifest. It
// returns the completion token once the account holds every file of the
// manifest, "" while some are still missing.
func (s *Store) UploadAssets(ctx context.Context, a Account, token string, files map[string]AssetFile) (string, error) {
	c, err := s.assetTokens.check(token, assetTokenUpload, a.ID, s.now())
	if err != nil {
		return "", Errorf(Unauthorized, CodeAuthentication, "Authentication error: %v: open an upload session first (wrangler deploy does)", err)
	}
	m, err := s.AssetManifest(ctx, a.ID, c.Manifest)
	if err != nil {
		return "", err
	}
	size := map[string]int64{}
	for _, e := range m {
		size[e.Hash] = e.Size
	}
	for h, f := range files {
		want, ok := size[h]
		if !ok {
			return "", Errorf(Invalid, CodeAssets, "file %.40q is not in the session's manifest", h)
		}
		if int64(len(f.Data)) != want {
			return "", Errorf(Invalid, CodeAssets, "file %s is %d bytes, the manifest says %d", h, len(f.Data), want)
		}
	}
	for h, f := range files {
		if err := s.blobs.Put(ctx, AssetBlobKey(a.ID, h), f.Data, f.ContentType, nil); err != nil {
			return "", err
		}
	}
	missing, err := s.missingAssets(ctx, a, m)
	if err != nil || len(missing) > 0 {
		return "", err
	}
	c.Kind, c.Exp = assetTokenCompletion, s.now().Add(AssetTokenTTL).Unix()
	return s.assetTokens.sign(c), nil
}

// AssetManifest reads a stored manifest by digest.
func (s *Store) AssetManifest(ctx context.Context, accountID, digest string) (AssetManifest, error) {
	return AssetFiles{Blobs: s.blobs}.Manifest(ctx, accountID, digest)
}

// AssetReader reads the stored static assets: a manifest by digest, a
// file by hash with its media type and size. The gateway and the pod API
// serve assets from one (AssetFiles).
type AssetReader interface {
	Manifest(ctx context.Context, accountID, digest string) (AssetManifest, error)
	Open(ctx context.Context, accountID, hash string) (io.ReadCloser, string, int64, error)
}

// AssetFiles is the AssetReader over the S3 bucket.
type AssetFiles struct{ Blobs *BlobStore }

// CachedManifests returns r with its manifests kept in memory once read
// (they never change under their digest), up to maxFiles entries in all;
// the oldest manifests go first.
func CachedManifests(r AssetReader, maxFiles int) AssetReader {
	return &manifestCache{AssetReader: r, max: maxFiles, m: map[string]AssetManifest{}}
}

type manifestCache struct {
	AssetReader
	max   int
	mu    sync.Mutex
	m     map[string]AssetManifest
	order []string
	files int
}

// Manifest implements AssetReader.
func (c *manifestCache) Manifest(ctx context.Context, accountID, digest string) (AssetManifest, error) {
	key := accountID + "/" + digest
	c.mu.Lock()
	m, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := c.AssetReader.Manifest(ctx, accountID, digest)
	if err != nil || len(m) > c.max {
		return m, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok {
		for c.files+len(m) > c.max && len(c.order) > 0 {
			old := c.order[0]
			c.order = c.order[1:]
			c.files -= len(c.m[old])
			delete(c.m, old)
		}
		c.m[key] = m
		c.order = append(c.order, key)
		c.files += len(m)
	}
	return m, nil
}

// Open streams the file of hash: its content, media type and size.
func (f AssetFiles) Open(ctx context.Context, accountID, hash string) (io.ReadCloser, string, int64, error) {
	return f.Blobs.Open(ctx, AssetBlobKey(accountID, hash))
}

// Manifest reads a stored manifest by digest.
func (f AssetFiles) Manifest(ctx context.Context, accountID, digest string) (AssetManifest, error) {
	b, _, err := f.Blobs.Get(ctx, AssetManifestKey(accountID, digest))
	if errors.Is(err, ErrBlobNotFound) {
		return nil, Errorf(NotFound, CodeAssets, "assets manifest %.64s is not stored", digest)
	}
	if err != nil {
		return nil, err
	}
	var m AssetManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("assets manifest %s: %w", digest, err)
	}
	return m, nil
}

// completedAssets checks an upload's completion token and returns its
// manifest's digest and number of files.
func (s *Store) completedAssets(ctx context.Context, a Account, token string) (string, int, error) {
	c, err := s.assetTokens.check(token, assetTokenCompletion, a.ID, s.now())
	if err != nil {
		return "", 0, Errorf(Invalid, CodeAssets, "the assets completion token is not valid (%v): upload the assets again (wrangler deploy does)", err)
	}
	m, err := s.AssetManifest(ctx, a.ID, c.Manifest)
	if err != nil {
		return "", 0, err
	}
	return c.Manifest, len(m), nil
}
