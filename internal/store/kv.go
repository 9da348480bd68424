package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Workers KV limits (Cloudflare's).
const (
	kvMaxKeyBytes      = 512
	KVMaxValueBytes    = 25 << 20
	kvMaxMetadataBytes = 1024
	// KVMinTTL is the shortest expiration a key may get, in seconds.
	KVMinTTL   = 60
	kvMaxTitle = 512
	// KVDefaultListLimit is the page size of a key listing without a limit.
	KVDefaultListLimit = 1000
	kvParallelism      = 8
)

// User metadata names of a KV value object.
const (
	kvMetaMetadata   = "kvmeta" // base64 of the KV metadata JSON
	kvMetaExpiration = "kvexp"  // unix seconds
)

// KV keeps Workers KV in the BlobStore, in the layout of paths.go: one
// object per namespace (namespace.json) and one per value, with the KV
// metadata (base64 JSON) and expiration (unix seconds) in the value object's
// user metadata. Expired keys are invisible and deleted lazily when met. The
// Cloudflare API, the dashboard and the runtime's KV protocol share it; its
// refusals are *Error (NotFound with CodeKVNotFound or CodeKVKeyNotFound,
// Invalid, TooLarge).
type KV struct {
	blobs *BlobStore
	now   func() time.Time
	quota *kvQuota
	// mu serialises namespace creation and renames (titles are unique).
	mu sync.Mutex
}

// NewKV returns the KV store in b with the default limits; a nil now means
// time.Now.
func NewKV(b *BlobStore, now func() time.Time) *KV {
	return NewKVWithLimits(b, now, KVLimits{})
}

// NewKVWithLimits returns the KV store in b with limits per account.
func NewKVWithLimits(b *BlobStore, now func() time.Time, limits KVLimits) *KV {
	if now == nil {
		now = time.Now
	}
	return &KV{blobs: b, now: now, quota: newKVQuota(limits)}
}

// KVNamespace is a namespace as stored in namespace.json.
type KVNamespace struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	CreatedOn time.Time `json:"created_on"`
}

// KVEntry is one stored value.
type KVEntry struct {
	Value      []byte
	Metadata   json.RawMessage // nil when none
	Expiration int64           // unix seconds, 0 = never
}

// KVKey is one item of a key listing.
type KVKey struct {
	Name       string          `json:"name"`
	Expiration int64           `json:"expiration,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// KVWrite is one key of a bulk write.
type KVWrite struct {
	Key   string
	Entry KVEntry
}

var kvNamespaceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidKVNamespaceID reports whether id has the form of the namespace IDs
// octo (and Cloudflare) make: 32 lowercase hex digits.
func ValidKVNamespaceID(id string) bool { return kvNamespaceIDRe.MatchString(id) }

// ValidKVKey checks Cloudflare's key rules.
func ValidKVKey(key string) error {
	switch {
	case key == "":
		return Errorf(Invalid, CodeBadRequest, "Invalid key name: the key is empty")
	case len(key) > kvMaxKeyBytes:
		return Errorf(Invalid, CodeBadRequest,
			"Invalid key name: the key is %d bytes long, the limit is %d bytes", len(key), kvMaxKeyBytes)
	case key == "." || key == "..":
		return Errorf(Invalid, CodeBadRequest, "Invalid key name: %q is not allowed as a key", key)
	case !utf8.ValidString(key):
		return Errorf(Invalid, CodeBadRequest, "Invalid key name: the key is not valid UTF-8")
	}
	return nil
}

// ValidKVMetadata checks and compacts KV metadata JSON; null means none.
func ValidKVMetadata(raw []byte) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Errorf(Invalid, CodeBadRequest, "Invalid metadata: not valid JSON: %v", err)
	}
	if buf.Len() > kvMaxMetadataBytes {
		return nil, Errorf(TooLarge, CodeTooLarge,
			"Metadata length of %d bytes exceeds the limit of %d bytes", buf.Len(), kvMaxMetadataBytes)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// ValidKVValue checks the value size.
func ValidKVValue(v []byte) error {
	if len(v) > KVMaxValueBytes {
		return KVValueTooLarge(int64(len(v)))
	}
	return nil
}

func KVValueTooLarge(n int64) *Error {
	if n < 0 {
		return Errorf(TooLarge, CodeTooLarge,
			"Value length exceeds the limit of %d bytes (25 MiB)", KVMaxValueBytes)
	}
	return Errorf(TooLarge, CodeTooLarge,
		"Value length of %d bytes exceeds the limit of %d bytes (25 MiB)", n, KVMaxValueBytes)
}

// ExpiresAt turns KV's expiration (absolute unix seconds) and expiration_ttl
// (seconds from now), nil when absent, into the unix second the key expires
// at (0 = never). Both must be at least 60 seconds away; the TTL wins when
// both are given.
func (st *KV) ExpiresAt(expiration, ttl *int64) (int64, error) {
	now := st.now().Unix()
	if ttl != nil {
		if *ttl < KVMinTTL {
			return 0, Errorf(Invalid, CodeKVBadExpiration,
				"Invalid expiration_ttl of %d. Expiration TTL must be at least %d seconds.", *ttl, KVMinTTL)
		}
		return now + *ttl, nil
	}
	if expiration != nil {
		if *expiration < now+KVMinTTL {
			return 0, Errorf(Invalid, CodeKVBadExpiration,
				"Invalid expiration of %d. Expiration times must be at least %d seconds in the future (now is %d).",
				*expiration, KVMinTTL, now)
		}
		return *expiration, nil
	}
	return 0, nil
}

func (st *KV) expired(exp int64) bool { return exp != 0 && exp <= st.now().Unix() }

func kvNamespaceNotFound() *Error {
	return Errorf(NotFound, CodeKVNotFound, "namespace not found")
}

func kvKeyNotFound() *Error {
	return Errorf(NotFound, CodeKVKeyNotFound, "key not found")
}

func validKVTitle(title string) error {
	switch {
	case strings.TrimSpace(title) == "":
		return Errorf(Invalid, CodeBadRequest, "title is required")
	case len(title) > kvMaxTitle:
		return Errorf(Invalid, CodeBadRequest, "title is longer than %d bytes", kvMaxTitle)
	}
	return nil
}

// Namespace returns one namespace; unknown (or malformed) ids are 10013.
func (st *KV) Namespace(ctx context.Context, account, id string) (KVNamespace, error) {
	if !ValidKVNamespaceID(id) {
		return KVNamespace{}, kvNamespaceNotFound()
	}
	b, _, err := st.blobs.Get(ctx, kvNamespaceKey(account, id))
	if errors.Is(err, ErrBlobNotFound) {
		return KVNamespace{}, kvNamespaceNotFound()
	}
	if err != nil {
		return KVNamespace{}, err
	}
	var ns KVNamespace
	if err := json.Unmarshal(b, &ns); err != nil {
		return KVNamespace{}, fmt.Errorf("KV namespace %s: %w", id, err)
	}
	return ns, nil
}

func (st *KV) saveNamespace(ctx context.Context, account string, ns KVNamespace) error {
	b, err := json.Marshal(ns)
	if err != nil {
		return err
	}
	return st.blobs.Put(ctx, kvNamespaceKey(account, ns.ID), b, "application/json", nil)
}

// Namespaces returns every namespace of account, in no particular order.
func (st *KV) Namespaces(ctx context.Context, account string) ([]KVNamespace, error) {
	ids, err := st.blobs.Dirs(ctx, kvAccountPrefix(account))
	if err != nil {
		return nil, err
	}
	found := make([]*KVNamespace, len(ids))
	errs := make([]error, len(ids))
	kvParallel(len(ids), func(i int) {
		ns, err := st.Namespace(ctx, account, ids[i])
		switch {
		case IsNotFound(err, CodeKVNotFound):
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
	out := []KVNamespace{}
	for _, ns := range found {
		if ns != nil {
			out = append(out, *ns)
		}
	}
	return out, nil
}

// titleTaken reports whether another namespace of account has title; it
// returns the number of namespaces.
func (st *KV) titleTaken(ctx context.Context, account, title, except string) (int, error) {
	all, err := st.Namespaces(ctx, account)
	if err != nil {
		return 0, err
	}
	for _, ns := range all {
		if ns.Title == title && ns.ID != except {
			return 0, Errorf(Invalid, CodeKVTitleExists, "A namespace with this account ID and title already exists")
		}
	}
	return len(all), nil
}

// CreateNamespace makes a namespace with a unique title, within the
// account's limit of namespaces.
func (st *KV) CreateNamespace(ctx context.Context, account, title string) (KVNamespace, error) {
	if err := validKVTitle(title); err != nil {
		return KVNamespace{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	n, err := st.titleTaken(ctx, account, title, "")
	if err != nil {
		return KVNamespace{}, err
	}
	if limit := st.quota.limits.Namespaces; limit > 0 && n >= limit {
		return KVNamespace{}, Errorf(Invalid, CodeKVNamespaceLimit,
			"This account already has %d KV namespaces, the limit is %d: delete one first", n, limit)
	}
	id, err := RandomHex(16)
	if err != nil {
		return KVNamespace{}, err
	}
	ns := KVNamespace{ID: id, Title: title, CreatedOn: st.now().UTC()}
	if err := st.saveNamespace(ctx, account, ns); err != nil {
		return KVNamespace{}, err
	}
	return ns, nil
}

// RenameNamespace changes the title of a namespace.
func (st *KV) RenameNamespace(ctx context.Context, account, id, title string) (KVNamespace, error) {
	if err := validKVTitle(title); err != nil {
		return KVNamespace{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	ns, err := st.Namespace(ctx, account, id)
	if err != nil {
		return KVNamespace{}, err
	}
	if _, err := st.titleTaken(ctx, account, title, id); err != nil {
		return KVNamespace{}, err
	}
	ns.Title = title
	if err := st.saveNamespace(ctx, account, ns); err != nil {
		return KVNamespace{}, err
	}
	return ns, nil
}

// DeleteNamespace removes a namespace and all its keys. namespace.json goes
// first, so the namespace disappears at once and takes no more writes.
func (st *KV) DeleteNamespace(ctx context.Context, account, id string) error {
	if _, err := st.Namespace(ctx, account, id); err != nil {
		return err
	}
	if err := st.blobs.Delete(ctx, kvNamespaceKey(account, id)); err != nil {
		return err
	}
	// The account's storage total is counted again at its next write.
	defer st.quota.forget(account)
	return st.blobs.DeletePrefix(ctx, kvNamespacePrefix(account, id))
}

// kvNone is the value of a user metadata name that holds nothing: not
// base64 and not a number.
const kvNone = "-"

// userMetadata always sets both names, kvNone for what e lacks: the S3
// store keeps an object's earlier user metadata across an overwrite that
// leaves a name out (versitygw's sidecar metadata), and a put must replace
// the whole entry, as on Cloudflare.
func (st *KV) userMetadata(e KVEntry) map[string]string {
	meta := map[string]string{kvMetaMetadata: kvNone, kvMetaExpiration: kvNone}
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

// Put stores one value after checking the namespace, key, value and metadata.
func (st *KV) Put(ctx context.Context, account, ns, key string, e KVEntry) error {
	if err := ValidKVKey(key); err != nil {
		return err
	}
	if err := ValidKVValue(e.Value); err != nil {
		return err
	}
	md, err := ValidKVMetadata(e.Metadata)
	if err != nil {
		return err
	}
	e.Metadata = md
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return err
	}
	errs, err := st.putAccounted(ctx, account, ns, []KVWrite{{Key: key, Entry: e}})
	if err != nil {
		return err
	}
	return errs[0]
}

func (st *KV) write(ctx context.Context, account, ns, key string, e KVEntry) error {
	return st.blobs.Put(ctx, kvValueKey(account, ns, key), e.Value, "application/octet-stream", st.userMetadata(e))
}

// PutMany writes already validated entries into an existing namespace and
// returns the keys that failed. A batch that would take the account over
// its storage limit is refused whole.
func (st *KV) PutMany(ctx context.Context, account, ns string, writes []KVWrite) ([]string, error) {
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return nil, err
	}
	errs, err := st.putAccounted(ctx, account, ns, writes)
	if err != nil {
		return nil, err
	}
	failed := make([]bool, len(writes))
	for i, err := range errs {
		failed[i] = err != nil
	}
	return kvPick(writes, failed, func(w KVWrite) string { return w.Key }), nil
}

// Get returns a live value; missing and expired keys are 10009.
func (st *KV) Get(ctx context.Context, account, ns, key string) (KVEntry, error) {
	if err := ValidKVKey(key); err != nil {
		return KVEntry{}, err
	}
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return KVEntry{}, err
	}
	obj := kvValueKey(account, ns, key)
	data, meta, err := st.blobs.Get(ctx, obj)
	if errors.Is(err, ErrBlobNotFound) {
		return KVEntry{}, kvKeyNotFound()
	}
	if err != nil {
		return KVEntry{}, err
	}
	md, exp := kvFromUserMetadata(meta)
	if st.expired(exp) {
		st.expire(ctx, obj)
		return KVEntry{}, kvKeyNotFound()
	}
	return KVEntry{Value: data, Metadata: md, Expiration: exp}, nil
}

// GetMany returns the live values of keys, in order, nil for a missing or
// expired key. Every key is checked first; an unknown namespace is refused.
func (st *KV) GetMany(ctx context.Context, account, ns string, keys []string) ([]*KVEntry, error) {
	for _, k := range keys {
		if err := ValidKVKey(k); err != nil {
			return nil, err
		}
	}
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return nil, err
	}
	entries := make([]*KVEntry, len(keys))
	errs := make([]error, len(keys))
	kvParallel(len(keys), func(i int) {
		e, err := st.Get(ctx, account, ns, keys[i])
		switch {
		case IsNotFound(err, CodeKVKeyNotFound):
		case err != nil:
			errs[i] = err
		default:
			entries[i] = &e
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return entries, nil
}

// Head returns a live key's expiration and metadata without its value.
func (st *KV) Head(ctx context.Context, account, ns, key string) (KVKey, error) {
	if err := ValidKVKey(key); err != nil {
		return KVKey{}, err
	}
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return KVKey{}, err
	}
	obj := kvValueKey(account, ns, key)
	meta, err := st.blobs.Head(ctx, obj)
	if errors.Is(err, ErrBlobNotFound) {
		return KVKey{}, kvKeyNotFound()
	}
	if err != nil {
		return KVKey{}, err
	}
	md, exp := kvFromUserMetadata(meta)
	if st.expired(exp) {
		st.expire(ctx, obj)
		return KVKey{}, kvKeyNotFound()
	}
	return KVKey{Name: key, Expiration: exp, Metadata: md}, nil
}

// expire deletes an expired value; failures only delay the cleanup.
func (st *KV) expire(ctx context.Context, obj string) { _ = st.blobs.Delete(ctx, obj) }

// Delete removes one key; a missing key is fine.
func (st *KV) Delete(ctx context.Context, account, ns, key string) error {
	if err := ValidKVKey(key); err != nil {
		return err
	}
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return err
	}
	return st.deleteAccounted(ctx, account, ns, key)
}

// DeleteMany removes already validated keys and returns those that failed.
func (st *KV) DeleteMany(ctx context.Context, account, ns string, keys []string) ([]string, error) {
	if _, err := st.Namespace(ctx, account, ns); err != nil {
		return nil, err
	}
	failed := make([]bool, len(keys))
	kvParallel(len(keys), func(i int) {
		failed[i] = st.deleteAccounted(ctx, account, ns, keys[i]) != nil
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
		return "", Errorf(Invalid, CodeBadRequest, "Invalid cursor %q", cursor)
	}
	return string(b), nil
}

// List returns up to limit live keys starting with prefix, in byte order,
// after cursor, and the cursor of the next page ("" on the last page).
func (st *KV) List(ctx context.Context, account, ns, prefix, cursor string, limit int) ([]KVKey, string, error) {
	if limit < 1 {
		limit = KVDefaultListLimit
	}
	if _, err := st.Namespace(ctx, account, ns); err != nil {
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

	out := []KVKey{}
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
		keys := make([]*KVKey, len(names))
		errs := make([]error, len(names))
		kvParallel(len(names), func(i int) {
			meta, err := st.blobs.Head(ctx, batch[i])
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
				keys[i] = &KVKey{Name: names[i], Expiration: exp, Metadata: md}
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
