// Package store is octo's domain layer: accounts and their workers
// subdomains, the records of scripts (versions, deployments, secrets), the
// S3 key layout (paths.go) and Workers KV. The Cloudflare API, the dashboard,
// the pod-facing server, the operators and the gateway all use it; it knows
// nothing of HTTP. Its refusals are *Error values with a Kind and the
// Cloudflare code that names the condition.
//
// Code and metadata of every version are immutable in S3 under the account's
// prefix; control state lives in Kubernetes objects of group api.cf-worker/v1.
// Writes go to S3 first, then to the objects, and on failure what was written
// is removed again.
package store

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
)

// ValidateFunc starts a new version once before anything of it is stored
// (WorkerdValidator does it in workerd). A *workerd.StartupError refuses the
// version with workerd's message; the duration becomes its startup_time_ms.
type ValidateFunc func(ctx context.Context, v *apiv1.WorkerVersion, parts []Part) (time.Duration, error)

// Options configure a Store.
type Options struct {
	// Client reads and writes the api.cf-worker/v1 objects and Secrets.
	Client client.Client
	// Blobs is the S3 bucket of code, metadata and KV data.
	Blobs *BlobStore
	// Accounts lists the accounts; nil means ClusterAccounts on Client.
	Accounts AccountSource
	// AuthorEmail is recorded as the author of versions and deployments.
	AuthorEmail string
	// Validate, when set, starts every new version once before it is
	// stored; nil accepts every version.
	Validate ValidateFunc
	// KVLimits bound each account's Workers KV; the zero value means the
	// defaults (DefaultKVStorageBytes, DefaultKVNamespaces).
	KVLimits KVLimits
	// D1Dir is where the D1 databases live (<D1Dir>/<account>/<uuid>.sqlite);
	// empty means D1 refuses every request.
	D1Dir string
	// D1Catalog, when set, finds the databases that uploads bind to
	// instead of D1Dir's catalog: the databases live in another process
	// (cluster mode's D1 owner).
	D1Catalog D1Catalog
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is the domain layer over the cluster and the S3 bucket. It is safe
// for concurrent use.
type Store struct {
	k8s      client.Client
	blobs    *BlobStore
	accounts AccountSource
	author   string
	validate ValidateFunc
	now      func() time.Time
	locks    scriptLocks
	kv       *KV
	r2       *R2
	d1       *D1
	// d1s finds the databases bindings name: d1, or Options.D1Catalog.
	d1s D1Catalog
	// assetTokens signs the static assets upload tokens.
	assetTokens assetTokens
}

// New returns a Store.
func New(opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	accounts := opts.Accounts
	if accounts == nil {
		accounts = ClusterAccounts{Reader: opts.Client}
	}
	s := &Store{
		k8s: opts.Client, blobs: opts.Blobs, accounts: accounts, author: opts.AuthorEmail,
		validate: opts.Validate, now: now, kv: NewKVWithLimits(opts.Blobs, now, opts.KVLimits),
		r2: NewR2(opts.Blobs, now),
		d1: NewD1(opts.D1Dir, now),
	}
	s.d1s = s.d1
	if opts.D1Catalog != nil {
		s.d1s = opts.D1Catalog
	}
	return s
}

// D1Catalog finds an account's D1 database by UUID or name: D1, or a
// client of the process that owns the databases.
type D1Catalog interface {
	Lookup(ctx context.Context, account, idOrName string) (D1Database, error)
}

// KV is the account-scoped Workers KV store in the same bucket.
func (s *Store) KV() *KV { return s.kv }

// R2 is the account-scoped R2 store on the same S3 connection.
func (s *Store) R2() *R2 { return s.r2 }

// D1 is the account-scoped D1 store (SQLite files under Options.D1Dir).
func (s *Store) D1() *D1 { return s.d1 }

// Blobs is the S3 bucket the store writes.
func (s *Store) Blobs() *BlobStore { return s.blobs }

// Accounts lists every account.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) { return s.accounts.Accounts(ctx) }

// Account returns the account with id, or a NotFound refusal (CodeNoRoute).
func (s *Store) Account(ctx context.Context, id string) (Account, error) {
	return FindAccount(ctx, s.accounts, id)
}

// Scheme returns a scheme with the Kubernetes built-in types and api.cf-worker/v1.
func Scheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}
