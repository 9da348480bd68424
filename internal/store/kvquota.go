package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"
)

// Default KV limits of an account. Cloudflare's free plan allows 1 GB of KV
// storage per account and every plan 1000 namespaces.
const (
	DefaultKVStorageBytes = 1 << 30
	DefaultKVNamespaces   = 1000
)

// KVLimits bound the Workers KV of each account.
type KVLimits struct {
	// StorageBytes is the most KV storage an account may use, counted by
	// kvCharge; 0 means DefaultKVStorageBytes, a negative value no limit.
	StorageBytes int64
	// Namespaces is the most namespaces an account may have; 0 means
	// DefaultKVNamespaces, a negative value no limit.
	Namespaces int
}

func (l KVLimits) withDefaults() KVLimits {
	if l.StorageBytes == 0 {
		l.StorageBytes = DefaultKVStorageBytes
	}
	if l.Namespaces == 0 {
		l.Namespaces = DefaultKVNamespaces
	}
	return l
}

// kvKeyOverhead is what every stored key costs on top of its name and
// value: the KV metadata it may carry (at most kvMaxMetadataBytes) lives in
// the object's user metadata, which a listing does not show, so every key
// is charged the most it can hold. A listing alone then rebuilds the total.
const kvKeyOverhead = kvMaxMetadataBytes

// kvCharge is what a key with a value of valueLen bytes counts against the
// account's storage limit.
func kvCharge(keyLen int, valueLen int64) int64 {
	return valueLen + int64(keyLen) + kvKeyOverhead
}

// kvUsageRecheck is how often, at most, an account's total is counted again
// from a listing before a write is refused: the running total only ever
// errs high (expired keys deleted when met, deleted namespaces), and a
// fresh count must not be made for every refused write.
const kvUsageRecheck = time.Minute

// kvStripes is the number of key locks: writes of keys of the same stripe
// are serialised, so that two writers of one key never both subtract the
// value they replace.
const kvStripes = 256

// kvUsage is an account's KV storage, in kvCharge bytes. It is built from a
// listing of the account's KV objects at its first use (and again when it
// would refuse a write, at most every kvUsageRecheck) and kept up to date by
// every write and delete: a running total costs one HEAD per written or
// deleted key instead of a listing per write.
type kvUsage struct {
	// load is held while the total is rebuilt: one listing at a time.
	load sync.Mutex

	mu      sync.Mutex
	loaded  bool
	bytes   int64
	counted time.Time // when bytes was last rebuilt from a listing
}

// kvQuota is the KV store's accounting of storage per account.
type kvQuota struct {
	limits KVLimits
	seed   maphash.Seed
	keys   [kvStripes]sync.Mutex

	mu    sync.Mutex
	usage map[string]*kvUsage // by account; one entry per account that wrote
}

func newKVQuota(l KVLimits) *kvQuota {
	return &kvQuota{limits: l.withDefaults(), seed: maphash.MakeSeed(), usage: map[string]*kvUsage{}}
}

// limited reports whether storage is counted at all.
func (q *kvQuota) limited() bool { return q.limits.StorageBytes > 0 }

// account returns the usage record of account.
func (q *kvQuota) account(account string) *kvUsage {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.usage[account]
	if u == nil {
		u = &kvUsage{}
		q.usage[account] = u
	}
	return u
}

// forget drops account's total; the next write counts it again. Used when
// a whole namespace goes.
func (q *kvQuota) forget(account string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.usage, account)
}

// lockKeys locks the stripes of keys, in order, and returns the unlock.
func (q *kvQuota) lockKeys(account, ns string, keys []string) func() {
	stripes := make([]int, 0, len(keys))
	for _, k := range keys {
		stripes = append(stripes, int(maphash.String(q.seed, account+"/"+ns+"/"+k)%kvStripes))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		q.keys[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			q.keys[i].Unlock()
		}
	}
}

// kvStorageLimit is the refusal of a write over the account's storage limit.
func kvStorageLimit(used, adding, limit int64) *Error {
	return Errorf(TooLarge, CodeKVStorageLimit,
		"KV storage limit exceeded: the account stores %d bytes, this write adds %d, the limit is %d bytes", used, adding, limit)
}

// countUsage sums kvCharge over every value object of account, from one
// listing.
func (st *KV) countUsage(ctx context.Context, account string) (int64, error) {
	prefix := kvAccountPrefix(account)
	var total int64
	err := st.blobs.Walk(ctx, prefix, func(key string, size int64) {
		_, rest, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		enc, ok := strings.CutPrefix(rest, "keys/")
		if !ok {
			return // namespace.json
		}
		keyLen := len(enc)
		if name, err := decodeKVKey(enc); err == nil {
			keyLen = len(name)
		}
		total += kvCharge(keyLen, size)
	})
	if err != nil {
		return 0, fmt.Errorf("count KV storage of account %s: %w", account, err)
	}
	return total, nil
}

// loadUsage builds u from a listing when it has none yet or, with recount,
// when the last count is older than kvUsageRecheck.
func (st *KV) loadUsage(ctx context.Context, account string, u *kvUsage, recount bool) error {
	u.load.Lock()
	defer u.load.Unlock()
	u.mu.Lock()
	fresh := u.loaded && (!recount || st.now().Sub(u.counted) < kvUsageRecheck)
	u.mu.Unlock()
	if fresh {
		return nil
	}
	total, err := st.countUsage(ctx, account)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.bytes, u.loaded, u.counted = total, true, st.now()
	u.mu.Unlock()
	return nil
}

// reserve adds delta bytes to account's total, or refuses when that goes
// over the limit. A refusal is made only after a fresh count (at most one
// per kvUsageRecheck).
func (st *KV) reserve(ctx context.Context, account string, delta int64) error {
	u := st.quota.account(account)
	limit := st.quota.limits.StorageBytes
	for recount := false; ; recount = true {
		if err := st.loadUsage(ctx, account, u, recount); err != nil {
			return err
		}
		u.mu.Lock()
		used := u.bytes
		if delta <= 0 || used+delta <= limit {
			u.bytes += delta
			u.mu.Unlock()
			return nil
		}
		u.mu.Unlock()
		if recount {
			return kvStorageLimit(used, delta, limit)
		}
	}
}

// adjust changes account's total by delta, when it is known.
func (st *KV) adjust(account string, delta int64) {
	u := st.quota.account(account)
	u.mu.Lock()
	if u.loaded {
		u.bytes = max(u.bytes+delta, 0)
	}
	u.mu.Unlock()
}

// storedCharge is the kvCharge of key as stored now, 0 when it is absent.
func (st *KV) storedCharge(ctx context.Context, account, ns, key string) (int64, error) {
	size, err := st.blobs.Size(ctx, kvValueKey(account, ns, key))
	if errors.Is(err, ErrBlobNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return kvCharge(len(key), size), nil
}

// putAccounted writes validated entries into an existing namespace within
// the account's storage limit: the whole batch is refused, with nothing
// written, when it would go over. It returns the error of each write.
func (st *KV) putAccounted(ctx context.Context, account, ns string, writes []KVWrite) ([]error, error) {
	failed := make([]error, len(writes))
	if !st.quota.limited() {
		kvParallel(len(writes), func(i int) {
			failed[i] = st.write(ctx, account, ns, writes[i].Key, writes[i].Entry)
		})
		return failed, nil
	}
	// A key written twice in one batch is counted once, at its largest value.
	charge := map[string]int64{}
	for _, w := range writes {
		charge[w.Key] = max(charge[w.Key], kvCharge(len(w.Key), int64(len(w.Entry.Value))))
	}
	keys := make([]string, 0, len(charge))
	for k := range charge {
		keys = append(keys, k)
	}
	unlock := st.quota.lockKeys(account, ns, keys)
	defer unlock()
	old := make([]int64, len(keys))
	errs := make([]error, len(keys))
	kvParallel(len(keys), func(i int) { old[i], errs[i] = st.storedCharge(ctx, account, ns, keys[i]) })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var delta int64
	for i, k := range keys {
		delta += charge[k] - old[i]
	}
	if err := st.reserve(ctx, account, delta); err != nil {
		return nil, err
	}
	kvParallel(len(writes), func(i int) {
		failed[i] = st.write(ctx, account, ns, writes[i].Key, writes[i].Entry)
	})
	// A key none of whose writes succeeded keeps its old value.
	written := map[string]bool{}
	for i, w := range writes {
		written[w.Key] = written[w.Key] || failed[i] == nil
	}
	for i, k := range keys {
		if !written[k] {
			st.adjust(account, old[i]-charge[k])
		}
	}
	return failed, nil
}

// deleteAccounted removes one key and takes its charge off the total.
func (st *KV) deleteAccounted(ctx context.Context, account, ns, key string) error {
	if !st.quota.limited() {
		return st.blobs.Delete(ctx, kvValueKey(account, ns, key))
	}
	unlock := st.quota.lockKeys(account, ns, []string{key})
	defer unlock()
	old, err := st.storedCharge(ctx, account, ns, key)
	if err != nil {
		return err
	}
	if err := st.blobs.Delete(ctx, kvValueKey(account, ns, key)); err != nil {
		return err
	}
	st.adjust(account, -old)
	return nil
}
