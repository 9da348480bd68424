// Package controller holds octo's reconcilers for the api.cf-worker/v1 kinds
// (docs/adr/0001-object-flow.md):
//
//   - WorkerAccount → WorkerBundle: every (script, version) the account must
//     run (each release's active deployment plus each script's latest
//     version, for previews) and a stable port for each.
//   - WorkerBundle → JobBuilder: one JobBuilder per distinct build input,
//     named <bundle>-<8 hex of its spec hash>; the last three are kept.
//   - JobBuilder: builds the image in-process with package builder;
//     Pending → Building → Succeeded/Failed.
//   - WorkerBundle → Deployment + Service running the latest image that was
//     built, rolled out without dropping requests.
//
// Every controller is level-based and idempotent: it computes the desired
// objects from what is stored, writes only what differs, sets owner
// references, conditions and events, and never depends on map order.
package controller

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// DefaultBundleName is the bundle of an account whose spec names none.
const DefaultBundleName = "octo"

// ContainerName is the workerd container of a bundle's pods.
const ContainerName = "workerd"

// KeepJobBuilders is how many JobBuilders a bundle keeps (besides the one
// its pods run and the one of its current spec).
const KeepJobBuilders = 3

// How many accounts and bundles are reconciled at once: one account's burst
// of uploads never queues another account's deploy behind it.
const (
	AccountWorkers = 4
	BundleWorkers  = 8
)

// Defaults of Options.
const (
	DefaultBuildTimeout        = 5 * time.Minute
	DefaultMaxConcurrentBuilds = 2
	DefaultMaxBuildAttempts    = 3
	DefaultHostSuffix          = "workers.localhost"
	// DefaultWorkersPerBundle bounds the scripts of one bundle, hence of one
	// workerd process: a deploy restarts at most this many scripts' process
	// (docs/adr/0004-sharded-bundles.md).
	DefaultWorkersPerBundle = 32
	// DefaultLinger is how long a bundle keeps the workers a change only
	// removed (see Options.Linger).
	DefaultLinger = time.Minute
)

// ImageBuilder builds bundle images; *builder.Builder is one.
type ImageBuilder interface {
	// EnsureBase returns the base image by digest, pushing it when missing.
	EnsureBase(ctx context.Context) (string, error)
	// Build builds and pushes one bundle image.
	Build(ctx context.Context, req builder.BuildRequest) (builder.BuildResult, error)
}

var _ ImageBuilder = (*builder.Builder)(nil)

// ImagePuller fetches an image onto the node that will run it.
type ImagePuller interface {
	// Pull fetches image (a reference by digest) into the node's runtime.
	Pull(ctx context.Context, image string) error
}

// Options configure the controllers.
type Options struct {
	// Builder builds the images (required).
	Builder ImageBuilder
	// Registry is the registry's host:port as the node pulls from it, e.g.
	// "127.0.0.1:5050" (required).
	Registry string
	// PodHost is the host:port at which pods reach octo's edge server: its
	// KV protocol and trace collector, e.g. "10.42.0.1:8787" (required for
	// KV and tails).
	PodHost string
	// OwnerHost is the host:port of the pod API of the process that owns
	// the D1 databases and the tail sessions, when it is not PodHost's
	// (cluster mode: platform.Owner); empty: PodHost.
	OwnerHost string
	// HostSuffix ends the hosts of the Workers' URLs:
	// <script>.<subdomain>.<HostSuffix>. Default "workers.localhost".
	HostSuffix string
	// GatewayPort, when set, completes the URLs written to the releases'
	// status: http://<host>:<GatewayPort>.
	GatewayPort int
	// Log receives the controllers' logs; nil uses the manager's logger.
	Log *slog.Logger
	// BuildTimeout bounds one build. Default 5 minutes.
	BuildTimeout time.Duration
	// MaxConcurrentBuilds is how many builds run at once. Default 2.
	MaxConcurrentBuilds int
	// MaxBuildAttempts is how many times a failing build is tried. Default 3.
	MaxBuildAttempts int
	// Puller, when set, fetches each built image onto the node as soon as
	// it is pushed, ahead of the pods that will run it (one node only).
	Puller ImagePuller
	// WorkersPerBundle is how many scripts one WorkerBundle runs at most;
	// an account with more gets further bundles. Default
	// DefaultWorkersPerBundle.
	WorkersPerBundle int
	// Linger is how long a bundle keeps running the workers that a change
	// of its account only removed (a deployment that moved to the version
	// uploaded just before, a deleted script): such a change rolls nothing
	// out at once, so `wrangler deploy` (upload, then deploy) costs one
	// rollout, not two, and a rollback to the previous version finds it
	// running. The removal is rolled out with the bundle's next change, or
	// after Linger. Default DefaultLinger; negative: removed at once.
	Linger time.Duration
	// Blobs, when set, is the S3 store of the scripts' code: a WorkerRelease
	// then carries a finalizer that removes its script's files from it.
	Blobs PrefixDeleter
	// ObjectStorage stores the Durable Objects of the bundles that host
	// some (e.g. HostObjectStorage); without it such bundles do not run.
	ObjectStorage ObjectStorage
}

func (o *Options) defaults() error {
	if o.Builder == nil {
		return fmt.Errorf("controllers: Options.Builder is required")
	}
	if o.Registry == "" {
		return fmt.Errorf("controllers: Options.Registry is required")
	}
	o.HostSuffix = cmp.Or(o.HostSuffix, DefaultHostSuffix)
	o.BuildTimeout = cmp.Or(o.BuildTimeout, DefaultBuildTimeout)
	o.MaxConcurrentBuilds = cmp.Or(o.MaxConcurrentBuilds, DefaultMaxConcurrentBuilds)
	o.MaxBuildAttempts = cmp.Or(o.MaxBuildAttempts, DefaultMaxBuildAttempts)
	o.WorkersPerBundle = cmp.Or(o.WorkersPerBundle, DefaultWorkersPerBundle)
	o.Linger = cmp.Or(o.Linger, DefaultLinger)
	return nil
}

// Scheme returns a scheme with every type the controllers use.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, apiv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Setup registers every octo controller with mgr. The manager's scheme must
// hold core/v1, apps/v1 and api.cf-worker/v1 (see Scheme).
func Setup(mgr ctrl.Manager, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	var logger logr.Logger
	if opts.Log != nil {
		logger = logr.FromSlogHandler(opts.Log.Handler())
	}
	rec := mgr.GetEventRecorderFor("octo")
	c, s := mgr.GetClient(), mgr.GetScheme()
	if err := (&AccountReconciler{Client: c, Scheme: s, Recorder: rec, Options: opts}).SetupWithManager(mgr, logger); err != nil {
		return err
	}
	if err := (&BundleReconciler{Client: c, Scheme: s, Recorder: rec, Options: opts}).SetupWithManager(mgr, logger); err != nil {
		return err
	}
	if opts.Blobs != nil {
		if err := (&ReleaseReconciler{Client: c, Blobs: opts.Blobs, Recorder: rec}).SetupWithManager(mgr, logger); err != nil {
			return err
		}
	}
	return (&JobBuilderReconciler{Client: c, APIReader: mgr.GetAPIReader(), Scheme: s, Recorder: rec, Options: opts}).SetupWithManager(mgr, logger)
}

// BundleName is the bundle of an account.
func BundleName(a *apiv1.WorkerAccount) string {
	return cmp.Or(a.Spec.WorkerBundleName, DefaultBundleName)
}

// Subdomain is the workers subdomain of an account.
func Subdomain(a *apiv1.WorkerAccount) string { return cmp.Or(a.Spec.Subdomain, a.Name) }

// TargetImage is the repository of an account's bundle images.
func TargetImage(registry, accountID string) string {
	return builder.RepositoryFor(registry, accountID)
}

var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// WorkloadName is the name of the Deployment and Service of a bundle: the
// bundle's name when it is a valid Service name (a DNS-1035 label),
// otherwise a sanitised name with a hash.
func WorkloadName(bundle string) string {
	if dns1035.MatchString(bundle) {
		return bundle
	}
	return "wb-" + sanitize(bundle, 50) + "-" + shortHash(bundle, 8)
}

// buildFormat names what a build puts into an image beyond its spec (the
// workerd config the builder renders). Raising it rebuilds every bundle once,
// e.g. after an upgrade that changes the config: format 2 added the pod API
// credentials, without which the pod API refuses a bundle's KV and tail calls;
// format 3 starts workerd through octo-launch with a unix socket per Worker
// (the pod's socket volume, which the Deployment mounts); format 4 adds the
// trigger Worker that runs cron triggers (builder.TriggerPort).
const buildFormat = "4"

// JobBuilderName is the JobBuilder of a bundle for a build spec.
func JobBuilderName(bundle string, spec *apiv1.JobBuilderSpec) string {
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(append(b, "\x00format="+buildFormat...))
	if len(bundle) > 240 {
		bundle = strings.TrimRight(bundle[:240], "-.")
	}
	return bundle + "-" + hex.EncodeToString(sum[:])[:8]
}

// VersionDigest identifies the content of a version: the SHA-256 of its spec.
func VersionDigest(v *apiv1.WorkerVersion) string {
	b, _ := json.Marshal(&v.Spec)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var nonDNS = regexp.MustCompile(`[^a-z0-9]+`)

func sanitize(s string, max int) string {
	s = strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > max {
		s = strings.Trim(s[:max], "-")
	}
	return cmp.Or(s, "x")
}

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// setCondition sets a condition with the object's generation and reports
// whether anything changed.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, ok bool, reason, msg string) bool {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	return setConditionStatus(conds, gen, typ, st, reason, msg)
}

func setConditionStatus(conds *[]metav1.Condition, gen int64, typ string, st metav1.ConditionStatus, reason, msg string) bool {
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	return meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// ownedBy reports whether owner is obj's controller.
func ownedBy(obj client.Object, owner client.Object) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == owner.GetUID()
}

// failedWorkers reads apiv1.AnnotationFailedWorkers.
func failedWorkers(jb *apiv1.JobBuilder) []apiv1.FailedWorker {
	var out []apiv1.FailedWorker
	if s := jb.Annotations[apiv1.AnnotationFailedWorkers]; s != "" {
		_ = json.Unmarshal([]byte(s), &out)
	}
	return out
}
