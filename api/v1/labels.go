package v1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels, annotations and finalizers octo puts on the objects it manages. They
// are the contract between the API, the operators, the gateway and the
// dashboard: every part reads them from here.
const (
	// LabelAccount is the account ID of a script's objects (WorkerRelease,
	// WorkerVersion, Secret) and of a bundle's JobBuilders, Deployment and pods.
	LabelAccount = "api.cf-worker/account"
	// LabelScript is the DNS-safe object name of the script (see the store's
	// ObjectName) on a script's WorkerRelease, WorkerVersions and Secret.
	LabelScript = "api.cf-worker/script"
	// LabelBundle is the bundle of a JobBuilder, Deployment, Service and pod.
	LabelBundle = "api.cf-worker/bundle"
	// LabelShard, on a WorkerBundle, is its index among the bundles of its
	// account: "0" for the bundle the account names (workerBundleName), "1",
	// "2"… for the further bundles <name>-1, <name>-2… that hold the scripts
	// beyond one bundle's share (docs/adr/0004-sharded-bundles.md).
	LabelShard = "api.cf-worker/shard"

	// AnnotationSockets, on a bundle's pod template, is the JSON object
	// {"<versionID>": port, ...} of the workers the pod serves, and
	// "octo-loader": port when its image runs the loader host
	// (docs/adr/0007). The gateway reads it from every pod: during a
	// rollout old and new pods each advertise their own.
	AnnotationSockets = "api.cf-worker/sockets"
	// AnnotationLoaderPort, on a JobBuilder, is the port of the loader host
	// in its image; absent when the image has none (built before it).
	AnnotationLoaderPort = "api.cf-worker/loader-port"
	// AnnotationFailedWorkers, on a JobBuilder, is the JSON list of the
	// workers (FailedWorker) left out of its image.
	AnnotationFailedWorkers = "api.cf-worker/failed-workers"
	// AnnotationBuildAttempts, on a JobBuilder, counts its builds.
	AnnotationBuildAttempts = "api.cf-worker/build-attempts"
	// AnnotationStalledPod, on a WorkerBundle, is set by the gateway while one
	// of the bundle's pods has its event loop blocked by a request; its value
	// is the pod's name. The gateway removes it when the pod answers again.
	// Meanwhile the bundle's Deployment runs one more replica, which serves
	// the bundle's other Workers while the stalled process spins.
	AnnotationStalledPod = "api.cf-worker/stalled-pod"
	// AnnotationValidatedBy, on a WorkerVersion, is the workerd version that
	// started it once when it was uploaded (the API's sandboxed validation):
	// a build with the same workerd does not start it again.
	AnnotationValidatedBy = "api.cf-worker/validated-by"
	// AnnotationWorkersChanged, on a WorkerBundle, is when its account last
	// changed its workers (RFC 3339): workers that a later change only
	// removes linger until Options.Linger after it.
	AnnotationWorkersChanged = "api.cf-worker/workers-changed"

	// AnnotationListedAt, on the default WorkerAccount, is when octo wrote
	// it again at a start because the API server's watch cache did not list
	// it (a missed create event): the write sends a new one.
	AnnotationListedAt = "api.cf-worker/listed-at"

	// FinalizerScriptFiles, on a WorkerRelease, removes the script's code and
	// metadata from S3 when the release is deleted, however it is deleted
	// (`wrangler delete`, kubectl, namespace deletion).
	FinalizerScriptFiles = "api.cf-worker/script-files"
)

// BundleLabelValue is the value of LabelBundle for a bundle: its name, or
// for a name over a label value's 63 characters, its first 50 and a hash.
func BundleLabelValue(bundle string) string {
	if len(bundle) <= 63 {
		return bundle
	}
	sum := sha256.Sum256([]byte(bundle))
	return strings.TrimRight(bundle[:50], "-.") + "-" + hex.EncodeToString(sum[:])[:8]
}
