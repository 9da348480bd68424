package fakecf

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/minio/minio-go/v7"
)

// Workers KV limits (Cloudflare's).
const (
	kvMaxKeyBytes      = 512
	kvMaxValueBytes    = 25 << 20
	kvMaxMetadataBytes = 1024
	kvMaxBulkItems     = 10000
	kvMaxBulkBody      = 100 << 20
	kvMaxJSONBody      = 1 << 20
	kvMinTTL           = 60
	kvMaxTitle         = 512
	kvDefaultListLimit = 1000
	kvMinListLimit     = 10
	kvMaxPerPage       = 1000
	kvDefaultPerPage   = 20
	kvParallelism      = 8
)

// Cloudflare error codes of the KV API (besides CodeKVNotFound and
// CodeKVKeyNotFound in envelope.go).
const (
	codeKVTitleExists       = 10014
	codeKVInvalidExpiration = 10033
)

// User metadata names of a KV value object.
const (
	kvMetaMetadata   = "kvmeta" // base64 of the KV metadata JSON
	kvMetaExpiration = "kvexp"  // unix seconds
)

// registerKV mounts the Workers KV API on the account group a. The store
// uses the server's clock (Options.Now).
func (s *Server) registerKV(a *echo.Group) {
	h := &kvAPI{st: newKVStore(s.blobs, s.now)}
	const p = "/storage/kv/namespaces"
	const n = p + "/:namespace_id"
	a.GET(p, h.listNamespaces)
	a.POST(p, h.createNamespace)
	a.GET(n, h.getNamespace)
	a.PUT(n, h.renameNamespace)
	a.DELETE(n, h.deleteNamespace)
	a.GET(n+"/keys", h.listKeys)
	// The key is the rest of the escaped path, decoded once: "/" arrives as
	// %2F, and a raw "/" is kept as part of the key.
	a.GET(n+"/values/*", h.getValue)
	a.PUT(n+"/values/*", h.putValue)
	a.DELETE(n+"/values/*", h.deleteValue)
	a.GET(n+"/metadata/*", h.getMetadata)
	a.PUT(n+"/bulk", h.bulkPut)
	a.POST(n+"/bulk/delete", h.bulkDelete)
	a.DELETE(n+"/bulk", h.bulkDelete) // legacy form of bulk/delete
}

// ---------------------------------------------------------------------------
// Storage

// kvStore keeps Workers KV in the BlobStore:
//
//	accounts/<account>/kv/<namespace id>/namespace.json  {id, title, created_on}
//	accounts/<account>/kv/<namespace id>/keys/<encoded key>  the value bytes
//
// with the KV metadata (base64 JSON) and expiration (unix seconds) in the
// value object's user metadata. Key names are encoded by encodeKVKey so that
// S3's lexical order is the keys' byte order. Expired keys are invisible and
// deleted lazily when met. It holds no HTTP concerns, so that the runtime's KV
// protocol can reuse it; its user-facing errors are *APIError.
type kvStore struct {
	blobs *BlobStore
	now   func() time.Time
	// mu serialises namespace creation and renames (titles are unique).
	mu sync.Mutex
}

// newKVStore returns the KV store in b; a nil now means time.Now.
func newKVStore(b *BlobStore, now func() time.Time) *kvStore {
	if now == nil {
		now = time.Now
	}
	return &kvStore{blobs: b, now: now}
}

// kvNamespace is a namespace as stored in namespace.json.
type kvNamespace struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	CreatedOn time.Time `json:"created_on"`
}

// kvEntry is one stored value.
type kvEntry struct {
	Value      []byte
	Metadata   json.RawMessage // nil when none
	Expiration int64           // unix seconds, 0 = never
}

// kvKey is one item of a key listing.
type kvKey struct {
	Name       string          `json:"name"`
	Expiration int64           `json:"expiration,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// kvWrite is one key of a bulk write.
type kvWrite struct {
	Key   string
	Entry kvEntry
}

var kvNamespaceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func kvAccountPrefix(account string) string { return "accounts/" + account + "/kv/" }

func kvNamespacePrefix(account, ns string) string { return kvAccountPrefix(account) + ns + "/" }

func kvNamespaceObject(account, ns string) string {
	return kvNamespacePrefix(account, ns) + "namespace.json"
}

func kvKeysPrefix(account, ns string) string { return kvNamespacePrefix(account, ns) + "keys/" }

func kvValueObject(account, ns, key string) string {
	return kvKeysPrefix(account, ns) + encodeKVKey(key)
}

// kvKeyEncoding is base64 with its alphabet in ASCII order, so that encoded
// strings sort like the raw bytes (a proper prefix sorts first because its
// encoding is shorter or its last, zero-padded character is smaller).
var kvKeyEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

const (
	// kvSegmentLen keeps every path segment under NAME_MAX (255): versitygw's
	// posix backend stores objects as files. A 512-byte key encodes to 683
	// characters, in 4 segments.
	kvSegmentLen = 200
	// kvKeyEnd ends every encoded key. It sorts before the alphabet and "/",
	// so a key still sorts before its extensions, and a key whose encoding
	// fills whole segments (file "X!") never collides with the directory
	// "X/" of a longer key.
	kvKeyEnd = '!'
)

// kvSegments splits an encoded key into path segments of kvSegmentLen.
func kvSegments(e string) string {
	var b strings.Builder
	for len(e) > kvSegmentLen {
		b.WriteString(e[:kvSegmentLen])
		b.WriteByte('/')
		e = e[kvSegmentLen:]
	}
	b.WriteString(e)
	return b.String()
}

// encodeKVKey maps any key to one object name (below the keys/ prefix) whose
// lexical order is the key's byte order.
func encodeKVKey(key string) string {
	return kvSegments(kvKeyEncoding.EncodeToString([]byte(key))) + string(kvKeyEnd)
}

// decodeKVKey reverses encodeKVKey.
func decodeKVKey(name string) (string, error) {
	e, ok := strings.CutSuffix(name, string(kvKeyEnd))
	if !ok {
		return "", fmt.Errorf("KV object name %q has no end mark", name)
	}
	b, err := kvKeyEncoding.DecodeString(strings.ReplaceAll(e, "/", ""))
	if err != nil {
		return "", fmt.Errorf("KV object name %q: %w", name, err)
	}
	return string(b), nil
}

// kvPrefixRange returns, for a key prefix, an S3 prefix shared by every
// encoded key that starts with it, and the S3 start-after that skips exactly
// the keys below it.
func kvPrefixRange(prefix string) (s3Prefix, startAfter string) {
	if prefix == "" {
		return "", ""
	}
	e := kvKeyEncoding.EncodeToString([]byte(prefix))
	// Only the characters made of whole prefix bits are shared by all keys
	// with the prefix; the last one carries padding bits.
	full := len(prefix) * 8 / 6
	// " " sorts before every character an encoded key uses, so start-after
	// "<prefix encoding> " lets the prefix itself (ending in kvKeyEnd) and
	// everything above it through.
	return kvSegments(e[:full]), kvSegments(e) + " "
}

// validKVKey checks Cloudflare's key rules.
func validKVKey(key string) error {
	switch {
	case key == "":
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid key name: the key is empty")
	case len(key) > kvMaxKeyBytes:
		return Errorf(http.StatusBadRequest, CodeBadRequest,
			"Invalid key name: the key is %d bytes long, the limit is %d bytes", len(key), kvMaxKeyBytes)
	case key == "." || key == "..":
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid key name: %q is not allowed as a key", key)
	case !utf8.ValidString(key):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid key name: the key is not valid UTF-8")
	}
	return nil
}

// validKVMetadata checks and compacts KV metadata JSON; null means none.
func validKVMetadata(raw []byte) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid metadata: not valid JSON: %v", err)
	}
	if buf.Len() > kvMaxMetadataBytes {
		return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"Metadata length of %d bytes exceeds the limit of %d bytes", buf.Len(), kvMaxMetadataBytes)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// validKVValue checks the value size.
func validKVValue(v []byte) error {
	if len(v) > kvMaxValueBytes {
		return kvValueTooLarge(int64(len(v)))
	}
	return nil
}

func kvValueTooLarge(n int64) *APIError {
	if n < 0 {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"Value length exceeds the limit of %d bytes (25 MiB)", kvMaxValueBytes)
	}
	return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
		"Value length of %d bytes exceeds the limit of %d bytes (25 MiB)", n, kvMaxValueBytes)
}

// expiresAt turns KV's expiration (absolute unix seconds) and expiration_ttl
// (seconds from now), nil when absent, into the unix second the key expires
// at (0 = never). Both must be at least 60 seconds away; the TTL wins when
// both are given.
func (st *kvStore) expiresAt(expiration, ttl *int64) (int64, error) {
	now := st.now().Unix()
	if ttl != nil {
		if *ttl < kvMinTTL {
			return 0, Errorf(http.StatusBadRequest, codeKVInvalidExpiration,
				"Invalid expiration_ttl of %d. Expiration TTL must be at least %d seconds.", *ttl, kvMinTTL)
		}
		return now + *ttl, nil
	}
	if expiration != nil {
		if *expiration < now+kvMinTTL {
			return 0, Errorf(http.StatusBadRequest, codeKVInvalidExpiration,
				"Invalid expiration of %d. Expiration times must be at least %d seconds in the future (now is %d).",
				*expiration, kvMinTTL, now)
		}
		return *expiration, nil
	}
	return 0, nil
}

func (st *kvStore) expired(exp int64) bool { return exp != 0 && exp <= st.now().Unix() }

func kvNamespaceNotFound() *APIError {
	return Errorf(http.StatusNotFound, CodeKVNotFound, "namespace not found")
}

func kvKeyNotFound() *APIError {
	return Errorf(http.StatusNotFound, CodeKVKeyNotFound, "key not found")
}

func validKVTitle(title string) error {
	switch {
	case strings.TrimSpace(title) == "":
		return Errorf(http.StatusBadRequest, CodeBadRequest, "title is required")
	case len(title) > kvMaxTitle:
		return Errorf(http.StatusBadRequest, CodeBadRequest, "title is longer than %d bytes", kvMaxTitle)
	}
	return nil
}

// namespace returns one namespace; unknown (or malformed) ids are 10013.
func (st *kvStore) namespace(ctx context.Context, account, id string) (kvNamespace, error) {
	if !kvNamespaceIDRe.MatchString(id) {
		return kvNamespace{}, kvNamespaceNotFound()
	}
	b, _, err := st.blobs.Get(ctx, kvNamespaceObject(account, id))
	if errors.Is(err, ErrBlobNotFound) {
		return kvNamespace{}, kvNamespaceNotFound()
	}
	if err != nil {
		return kvNamespace{}, err
	}
	var ns kvNamespace
	if err := json.Unmarshal(b, &ns); err != nil {
		return kvNamespace{}, fmt.Errorf("KV namespace %s: %w", id, err)
	}
	return ns, nil
}

func (st *kvStore) saveNamespace(ctx context.Context, account string, ns kvNamespace) error {
	b, err := json.Marshal(ns)
	if err != nil {
		return err
	}
	return st.blobs.Put(ctx, kvNamespaceObject(account, ns.ID), b, "application/json", nil)
}

// listNamespaces returns every namespace of account, in no particular order.
func (st *kvStore) listNamespaces(ctx context.Context, account string) ([]kvNamespace, error) {
	ids, err := blobDirs(ctx, st.blobs, kvAccountPrefix(account))
	if err != nil {
		return nil, err
	}
	found := make([]*kvNamespace, len(ids))
	errs := make([]error, len(ids))
	kvParallel(len(ids), func(i int) {
		ns, err := st.namespace(ctx, account, ids[i])
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Code == CodeKVNotFound:
			// a namespace being deleted, or a stray prefix
		case err != nil:
			errs[i] = err
		default:
			found[i] = &ns
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := []kvNamespace{}
	for _, ns := range found {
		if ns != nil {
			out = append(out, *ns)
		}
	}
	return out, nil
}

// titleTaken reports whether another namespace of account has title.
func (st *kvStore) titleTaken(ctx context.Context, account, title, except string) error {
	all, err := st.listNamespaces(ctx, account)
	if err != nil {
		return err
	}
	for _, ns := range all {
		if ns.Title == title && ns.ID != except {
			return Errorf(http.StatusBadRequest, codeKVTitleExists, "A namespace with this account ID and title already exists")
		}
	}
	return nil
}

// createNamespace makes a namespace with a unique title.
func (st *kvStore) createNamespace(ctx context.Context, account, title string) (kvNamespace, error) {
	if err := validKVTitle(title); err != nil {
		return kvNamespace{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.titleTaken(ctx, account, title, ""); err != nil {
		return kvNamespace{}, err
	}
	id, err := randomHex(16)
	if err != nil {
		return kvNamespace{}, err
	}
	ns := kvNamespace{ID: id, Title: title, CreatedOn: st.now().UTC()}
	if err := st.saveNamespace(ctx, account, ns); err != nil {
		return kvNamespace{}, err
	}
	return ns, nil
}

// renameNamespace changes the title of a namespace.
func (st *kvStore) renameNamespace(ctx context.Context, account, id, title string) (kvNamespace, error) {
	if err := validKVTitle(title); err != nil {
		return kvNamespace{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	ns, err := st.namespace(ctx, account, id)
	if err != nil {
		return kvNamespace{}, err
	}
	if err := st.titleTaken(ctx, account, title, id); err != nil {
		return kvNamespace{}, err
	}
	ns.Title = title
	if err := st.saveNamespace(ctx, account, ns); err != nil {
		return kvNamespace{}, err
	}
	return ns, nil
}

// deleteNamespace removes a namespace and all its keys. namespace.json goes
// first, so the namespace disappears at once and takes no more writes.
func (st *kvStore) deleteNamespace(ctx context.Context, account, id string) error {
	if _, err := st.namespace(ctx, account, id); err != nil {
		return err
	}
	if err := st.blobs.Delete(ctx, kvNamespaceObject(account, id)); err != nil {
		return err
	}
	return st.blobs.DeletePrefix(ctx, kvNamespacePrefix(account, id))
}

func (st *kvStore) userMetadata(e kvEntry) map[string]string {
	meta := map[string]string{}
	if len(e.Metadata) > 0 {
		meta[kvMetaMetadata] = base64.StdEncoding.EncodeToString(e.Metadata)
	}
	if e.Expiration != 0 {
		meta[kvMetaExpiration] = strconv.FormatInt(e.Expiration, 10)
	}
	return meta
}

// kvFromUserMetadata reads the KV metadata and expiration back (S3 returns
// the names canonicalised, e.g. "Kvmeta").
func kvFromUserMetadata(meta map[string]string) (json.RawMessage, int64) {
	var md json.RawMessage
	var exp int64
	for k, v := range meta {
		switch strings.ToLower(k) {
		case kvMetaMetadata:
			if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) > 0 {
				md = b
			}
		case kvMetaExpiration:
			exp, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return md, exp
}

// put stores one value after checking the namespace, key, value and metadata.
func (st *kvStore) put(ctx context.Context, account, ns, key string, e kvEntry) error {
	if err := validKVKey(key); err != nil {
		return err
	}
	if err := validKVValue(e.Value); err != nil {
		return err
	}
	md, err := validKVMetadata(e.Metadata)
	if err != nil {
		return err
	}
	e.Metadata = md
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return err
	}
	return st.write(ctx, account, ns, key, e)
}

func (st *kvStore) write(ctx context.Context, account, ns, key string, e kvEntry) error {
	return st.blobs.Put(ctx, kvValueObject(account, ns, key), e.Value, "application/octet-stream", st.userMetadata(e))
}

// putMany writes already validated entries into an existing namespace and
// returns the keys that failed.
func (st *kvStore) putMany(ctx context.Context, account, ns string, writes []kvWrite) ([]string, error) {
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return nil, err
	}
	failed := make([]bool, len(writes))
	kvParallel(len(writes), func(i int) {
		failed[i] = st.write(ctx, account, ns, writes[i].Key, writes[i].Entry) != nil
	})
	return kvPick(writes, failed, func(w kvWrite) string { return w.Key }), nil
}

// get returns a live value; missing and expired keys are 10009.
func (st *kvStore) get(ctx context.Context, account, ns, key string) (kvEntry, error) {
	if err := validKVKey(key); err != nil {
		return kvEntry{}, err
	}
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return kvEntry{}, err
	}
	obj := kvValueObject(account, ns, key)
	data, meta, err := st.blobs.Get(ctx, obj)
	if errors.Is(err, ErrBlobNotFound) {
		return kvEntry{}, kvKeyNotFound()
	}
	if err != nil {
		return kvEntry{}, err
	}
	md, exp := kvFromUserMetadata(meta)
	if st.expired(exp) {
		st.expire(ctx, obj)
		return kvEntry{}, kvKeyNotFound()
	}
	return kvEntry{Value: data, Metadata: md, Expiration: exp}, nil
}

// head returns a live key's expiration and metadata without its value.
func (st *kvStore) head(ctx context.Context, account, ns, key string) (kvKey, error) {
	if err := validKVKey(key); err != nil {
		return kvKey{}, err
	}
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return kvKey{}, err
	}
	obj := kvValueObject(account, ns, key)
	meta, err := blobHead(ctx, st.blobs, obj)
	if errors.Is(err, ErrBlobNotFound) {
		return kvKey{}, kvKeyNotFound()
	}
	if err != nil {
		return kvKey{}, err
	}
	md, exp := kvFromUserMetadata(meta)
	if st.expired(exp) {
		st.expire(ctx, obj)
		return kvKey{}, kvKeyNotFound()
	}
	return kvKey{Name: key, Expiration: exp, Metadata: md}, nil
}

// expire deletes an expired value; failures only delay the cleanup.
func (st *kvStore) expire(ctx context.Context, obj string) { _ = st.blobs.Delete(ctx, obj) }

// delete removes one key; a missing key is fine.
func (st *kvStore) delete(ctx context.Context, account, ns, key string) error {
	if err := validKVKey(key); err != nil {
		return err
	}
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return err
	}
	return st.blobs.Delete(ctx, kvValueObject(account, ns, key))
}

// deleteMany removes already validated keys and returns those that failed.
func (st *kvStore) deleteMany(ctx context.Context, account, ns string, keys []string) ([]string, error) {
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return nil, err
	}
	failed := make([]bool, len(keys))
	kvParallel(len(keys), func(i int) {
		failed[i] = st.blobs.Delete(ctx, kvValueObject(account, ns, keys[i])) != nil
	})
	return kvPick(keys, failed, func(k string) string { return k }), nil
}

// encodeKVCursor and decodeKVCursor make the opaque list cursor: the last
// key returned.
func encodeKVCursor(lastKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastKey))
}

func decodeKVCursor(cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 {
		return "", Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid cursor %q", cursor)
	}
	return string(b), nil
}

// list returns up to limit live keys starting with prefix, in byte order,
// after cursor, and the cursor of the next page ("" on the last page).
func (st *kvStore) list(ctx context.Context, account, ns, prefix, cursor string, limit int) ([]kvKey, string, error) {
	if limit < 1 {
		limit = kvDefaultListLimit
	}
	if _, err := st.namespace(ctx, account, ns); err != nil {
		return nil, "", err
	}
	keysPrefix := kvKeysPrefix(account, ns)
	sub, after := kvPrefixRange(prefix)
	s3Prefix := keysPrefix + sub
	if after != "" {
		after = keysPrefix + after
	}
	if cursor != "" {
		last, err := decodeKVCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		if a := keysPrefix + encodeKVKey(last); a > after {
			after = a
		}
	}
	// BlobStore.List stops reading early: cancel the lister behind it.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out := []kvKey{}
	for {
		need := limit - len(out)
		objs, err := st.blobs.List(lctx, s3Prefix, after, need+1)
		if err != nil {
			return nil, "", err
		}
		// Look at need objects; one more tells whether the range goes on.
		exhausted := len(objs) <= need
		if !exhausted {
			if name, err := decodeKVKey(strings.TrimPrefix(objs[need], keysPrefix)); err == nil && !strings.HasPrefix(name, prefix) {
				exhausted = true
			}
			objs = objs[:need]
		}
		var names, batch []string
		for _, o := range objs {
			name, err := decodeKVKey(strings.TrimPrefix(o, keysPrefix))
			if err != nil {
				continue // not a value object
			}
			if !strings.HasPrefix(name, prefix) {
				// Keys come in order from the prefix on: the range is over.
				exhausted = true
				break
			}
			names, batch = append(names, name), append(batch, o)
		}
		keys := make([]*kvKey, len(names))
		errs := make([]error, len(names))
		kvParallel(len(names), func(i int) {
			meta, err := blobHead(ctx, st.blobs, batch[i])
			switch {
			case errors.Is(err, ErrBlobNotFound):
				// deleted meanwhile
			case err != nil:
				errs[i] = err
			default:
				md, exp := kvFromUserMetadata(meta)
				if st.expired(exp) {
					st.expire(ctx, batch[i])
					return
				}
				keys[i] = &kvKey{Name: names[i], Expiration: exp, Metadata: md}
			}
		})
		if err := errors.Join(errs...); err != nil {
			return nil, "", err
		}
		for _, k := range keys {
			if k != nil {
				out = append(out, *k)
			}
		}
		if exhausted || len(objs) == 0 {
			return out, "", nil
		}
		if len(out) == limit {
			return out, encodeKVCursor(out[len(out)-1].Name), nil
		}
		after = objs[len(objs)-1]
	}
}

// kvParallel runs f(0..n-1) on up to kvParallelism goroutines.
func kvParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, kvParallelism)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// kvPick returns name(items[i]) for every i with flags[i] set, never nil.
func kvPick[T any](items []T, flags []bool, name func(T) string) []string {
	out := []string{}
	for i, it := range items {
		if flags[i] {
			out = append(out, name(it))
		}
	}
	return out
}

// blobHead returns the user metadata of an object; ErrBlobNotFound when it
// is missing.
func blobHead(ctx context.Context, b *BlobStore, key string) (map[string]string, error) {
	info, err := b.c.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", key, ErrBlobNotFound)
		}
		return nil, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	return info.UserMetadata, nil
}

// blobDirs returns the names of the "directories" right below prefix.
func blobDirs(ctx context.Context, b *BlobStore, prefix string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []string
	for obj := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3 list %s: %w", prefix, obj.Err)
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix), "/"); ok && name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// HTTP

// kvAPI serves the KV routes.
type kvAPI struct{ st *kvStore }

// kvNamespaceJSON is a namespace as the API returns it.
type kvNamespaceJSON struct {
	ID                  string `json:"id"`
	Title               string `json:"title"`
	SupportsURLEncoding bool   `json:"supports_url_encoding"`
}

func (ns kvNamespace) toJSON() kvNamespaceJSON {
	return kvNamespaceJSON{ID: ns.ID, Title: ns.Title, SupportsURLEncoding: true}
}

// kvReadBody reads at most limit bytes of the request body.
func kvReadBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
			"Request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "could not read the request body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "Request body exceeds the limit of %d bytes", limit)
	}
	return b, nil
}

// kvDecodeJSON reads a JSON body of at most limit bytes into v.
func kvDecodeJSON(c echo.Context, limit int64, v any) error {
	b, err := kvReadBody(c, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid JSON in the request body: %v", err)
	}
	return nil
}

// kvPathKey returns the key of a /values/<key> or /metadata/<key> route,
// decoded exactly once from the escaped path (so "%2F" is a "/" of the key).
func kvPathKey(c echo.Context, kind string) (string, error) {
	p := c.Request().URL.EscapedPath()
	const marker = "/storage/kv/namespaces/"
	i := strings.Index(p, marker)
	if i < 0 {
		return "", echo.ErrNotFound
	}
	_, rest, _ := strings.Cut(p[i+len(marker):], "/")
	raw, ok := strings.CutPrefix(rest, kind+"/")
	if !ok {
		return "", echo.ErrNotFound
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid key name: bad URL encoding: %v", err)
	}
	return key, nil
}

func kvParseInt(c echo.Context, name string) (*int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, codeKVInvalidExpiration,
			"Invalid %s of %q. Please specify an integer number of seconds; expirations must be at least %d seconds in the future.",
			name, v, kvMinTTL)
	}
	return &n, nil
}

func (h *kvAPI) createNamespace(c echo.Context) error {
	var body struct {
		Title string `json:"title"`
	}
	if err := kvDecodeJSON(c, kvMaxJSONBody, &body); err != nil {
		return err
	}
	ns, err := h.st.createNamespace(c.Request().Context(), account(c).ID, body.Title)
	if err != nil {
		return err
	}
	return ok(c, ns.toJSON())
}

func (h *kvAPI) listNamespaces(c echo.Context) error {
	order, direction := c.QueryParam("order"), c.QueryParam("direction")
	if order != "" && order != "title" && order != "id" {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid order %q: use title or id", order)
	}
	if direction != "" && direction != "asc" && direction != "desc" {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Invalid direction %q: use asc or desc", direction)
	}
	all, err := h.st.listNamespaces(c.Request().Context(), account(c).ID)
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b kvNamespace) int {
		if order == "id" {
			return strings.Compare(a.ID, b.ID)
		}
		if c := strings.Compare(a.Title, b.Title); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if direction == "desc" {
		slices.Reverse(all)
	}
	pg, _ := strconv.Atoi(c.QueryParam("page"))
	pg = max(pg, 1)
	per, _ := strconv.Atoi(c.QueryParam("per_page"))
	if per < 1 {
		per = kvDefaultPerPage
	}
	per = min(per, kvMaxPerPage)
	start := min((pg-1)*per, len(all))
	end := min(start+per, len(all))
	out := make([]kvNamespaceJSON, 0, end-start)
	for _, ns := range all[start:end] {
		out = append(out, ns.toJSON())
	}
	return okPaged(c, out, PageInfo{Page: pg, PerPage: per, Count: len(out), TotalCount: len(all)})
}

func (h *kvAPI) getNamespace(c echo.Context) error {
	ns, err := h.st.namespace(c.Request().Context(), account(c).ID, c.Param("namespace_id"))
	if err != nil {
		return err
	}
	return ok(c, ns.toJSON())
}

func (h *kvAPI) renameNamespace(c echo.Context) error {
	var body struct {
		Title string `json:"title"`
	}
	if err := kvDecodeJSON(c, kvMaxJSONBody, &body); err != nil {
		return err
	}
	ns, err := h.st.renameNamespace(c.Request().Context(), account(c).ID, c.Param("namespace_id"), body.Title)
	if err != nil {
		return err
	}
	return ok(c, ns.toJSON())
}

func (h *kvAPI) deleteNamespace(c echo.Context) error {
	if err := h.st.deleteNamespace(c.Request().Context(), account(c).ID, c.Param("namespace_id")); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvListEnvelope is the envelope of a key listing: Cloudflare always sends
// result_info.cursor, "" on the last page (PageInfo would omit it).
type kvListEnvelope struct {
	Success    bool       `json:"success"`
	Errors     []Message  `json:"errors"`
	Messages   []Message  `json:"messages"`
	Result     []kvKey    `json:"result"`
	ResultInfo kvListInfo `json:"result_info"`
}

type kvListInfo struct {
	Count  int    `json:"count"`
	Cursor string `json:"cursor"`
}

func (h *kvAPI) listKeys(c echo.Context) error {
	limit := kvDefaultListLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < kvMinListLimit || n > kvDefaultListLimit {
			return Errorf(http.StatusBadRequest, CodeBadRequest,
				"Invalid limit %q: it must be an integer from %d to %d", v, kvMinListLimit, kvDefaultListLimit)
		}
		limit = n
	}
	keys, cursor, err := h.st.list(c.Request().Context(), account(c).ID, c.Param("namespace_id"),
		c.QueryParam("prefix"), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, kvListEnvelope{
		Success: true, Errors: []Message{}, Messages: []Message{},
		Result: keys, ResultInfo: kvListInfo{Count: len(keys), Cursor: cursor},
	})
}

// getValue answers the raw bytes, without the envelope.
func (h *kvAPI) getValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	e, err := h.st.get(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key)
	if err != nil {
		return err
	}
	if e.Expiration != 0 {
		c.Response().Header().Set("Expiration", strconv.FormatInt(e.Expiration, 10))
	}
	return c.Blob(http.StatusOK, "application/octet-stream", e.Value)
}

func (h *kvAPI) getMetadata(c echo.Context) error {
	key, err := kvPathKey(c, "metadata")
	if err != nil {
		return err
	}
	k, err := h.st.head(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key)
	if err != nil {
		return err
	}
	if k.Metadata == nil {
		return ok(c, nil)
	}
	return ok(c, k.Metadata)
}

// putValue takes the value as the raw body (any content type) or as the
// "value" part of a multipart form with an optional "metadata" part.
func (h *kvAPI) putValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	if err := validKVKey(key); err != nil {
		return err
	}
	exp, err := kvParseInt(c, "expiration")
	if err != nil {
		return err
	}
	ttl, err := kvParseInt(c, "expiration_ttl")
	if err != nil {
		return err
	}
	var e kvEntry
	if e.Expiration, err = h.st.expiresAt(exp, ttl); err != nil {
		return err
	}
	mt, params, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt == "multipart/form-data" {
		e.Value, e.Metadata, err = kvReadForm(c, params["boundary"])
	} else {
		e.Value, err = kvReadValue(c)
	}
	if err != nil {
		return err
	}
	if err := h.st.put(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key, e); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvReadValue reads a raw value body.
func kvReadValue(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > kvMaxValueBytes {
		return nil, kvValueTooLarge(r.ContentLength)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, kvMaxValueBytes+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "could not read the value: %v", err)
	}
	if len(b) > kvMaxValueBytes {
		return nil, kvValueTooLarge(-1)
	}
	return b, nil
}

// kvReadForm reads the "value" and "metadata" parts of a multipart put.
func kvReadForm(c echo.Context, boundary string) ([]byte, json.RawMessage, error) {
	if boundary == "" {
		return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "multipart/form-data body without a boundary")
	}
	mr := multipart.NewReader(c.Request().Body, boundary)
	var value []byte
	var md json.RawMessage
	seen := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "value":
			b, err := io.ReadAll(io.LimitReader(part, kvMaxValueBytes+1))
			if err != nil {
				return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
			}
			if len(b) > kvMaxValueBytes {
				return nil, nil, kvValueTooLarge(-1)
			}
			value, seen = b, true
		case "metadata":
			b, err := io.ReadAll(io.LimitReader(part, kvMaxJSONBody+1))
			if err != nil {
				return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
			}
			if md, err = validKVMetadata(b); err != nil {
				return nil, nil, err
			}
		default:
			_, _ = io.Copy(io.Discard, part)
		}
	}
	if !seen {
		return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest, "multipart/form-data body without a \"value\" part")
	}
	return value, md, nil
}

func (h *kvAPI) deleteValue(c echo.Context) error {
	key, err := kvPathKey(c, "values")
	if err != nil {
		return err
	}
	if err := h.st.delete(c.Request().Context(), account(c).ID, c.Param("namespace_id"), key); err != nil {
		return err
	}
	return ok(c, nil)
}

// kvBulkItem is one element of a bulk write.
type kvBulkItem struct {
	Key           *string         `json:"key"`
	Value         *string         `json:"value"`
	Base64        bool            `json:"base64"`
	Expiration    *int64          `json:"expiration"`
	ExpirationTTL *int64          `json:"expiration_ttl"`
	Metadata      json.RawMessage `json:"metadata"`
}

type kvBulkResult struct {
	SuccessfulKeyCount int      `json:"successful_key_count"`
	UnsuccessfulKeys   []string `json:"unsuccessful_keys"`
}

// bulkPut validates every item before writing any.
func (h *kvAPI) bulkPut(c echo.Context) error {
	var items []kvBulkItem
	if err := kvDecodeJSON(c, kvMaxBulkBody, &items); err != nil {
		return err
	}
	if len(items) > kvMaxBulkItems {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Too many keys: %d, the limit is %d per request", len(items), kvMaxBulkItems)
	}
	writes := make([]kvWrite, len(items))
	for i, it := range items {
		fail := func(err error) error {
			var ae *APIError
			if errors.As(err, &ae) {
				return Errorf(ae.Status, ae.Code, "item %d: %s", i, ae.Msg)
			}
			return err
		}
		if it.Key == nil {
			return fail(Errorf(http.StatusBadRequest, CodeBadRequest, "missing \"key\""))
		}
		if err := validKVKey(*it.Key); err != nil {
			return fail(err)
		}
		if it.Value == nil {
			return fail(Errorf(http.StatusBadRequest, CodeBadRequest, "key %q: missing \"value\"", *it.Key))
		}
		value := []byte(*it.Value)
		if it.Base64 {
			var err error
			if value, err = base64.StdEncoding.DecodeString(*it.Value); err != nil {
				return fail(Errorf(http.StatusBadRequest, CodeBadRequest, "key %q: the value is not valid base64: %v", *it.Key, err))
			}
		}
		if err := validKVValue(value); err != nil {
			return fail(err)
		}
		md, err := validKVMetadata(it.Metadata)
		if err != nil {
			return fail(err)
		}
		exp, err := h.st.expiresAt(it.Expiration, it.ExpirationTTL)
		if err != nil {
			return fail(err)
		}
		writes[i] = kvWrite{Key: *it.Key, Entry: kvEntry{Value: value, Metadata: md, Expiration: exp}}
	}
	failed, err := h.st.putMany(c.Request().Context(), account(c).ID, c.Param("namespace_id"), writes)
	if err != nil {
		return err
	}
	return ok(c, kvBulkResult{SuccessfulKeyCount: len(writes) - len(failed), UnsuccessfulKeys: failed})
}

// bulkDelete takes a JSON array of key names.
func (h *kvAPI) bulkDelete(c echo.Context) error {
	var keys []string
	if err := kvDecodeJSON(c, kvMaxBulkBody, &keys); err != nil {
		return err
	}
	if len(keys) > kvMaxBulkItems {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "Too many keys: %d, the limit is %d per request", len(keys), kvMaxBulkItems)
	}
	for i, k := range keys {
		if err := validKVKey(k); err != nil {
			ae := err.(*APIError)
			return Errorf(ae.Status, ae.Code, "item %d: %s", i, ae.Msg)
		}
	}
	failed, err := h.st.deleteMany(c.Request().Context(), account(c).ID, c.Param("namespace_id"), keys)
	if err != nil {
		return err
	}
	return ok(c, kvBulkResult{SuccessfulKeyCount: len(keys) - len(failed), UnsuccessfulKeys: failed})
}
