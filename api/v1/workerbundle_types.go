package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkerBundleSpec is the set of (script, version) pairs one account must run. Which
// version serves a request is not here: the gateway reads it from the scripts'
// WorkerReleases, so a change of traffic alone never rebuilds or restarts a bundle.
type WorkerBundleSpec struct {
	// AccountID is the ID of the account whose workers the bundle runs.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountID string `json:"accountID"`

	// Workers are the (script, version) pairs to run, one workerd socket each, sorted by
	// scriptName then versionID. Pairs are unique.
	// +optional
	// +listType=map
	// +listMapKey=scriptName
	// +listMapKey=versionID
	// +kubebuilder:validation:MaxItems=1000
	Workers []BundleWorker `json:"workers,omitempty"`

	// PodTemplate holds the pod settings of the bundle's workload, copied from the
	// WorkerAccount.
	// +optional
	PodTemplate WorkerPodTemplate `json:"podTemplate,omitempty"`

	// Replicas is the number of pods that serve the bundle. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
}

// BundleWorker is one (script, version) pair a bundle runs.
type BundleWorker struct {
	// ScriptName is the name of the Worker script.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_-]{0,62}$`
	ScriptName string `json:"scriptName"`

	// VersionID is the ID of the version to run.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	VersionID string `json:"versionID"`

	// VersionName is the name of the WorkerVersion object, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	VersionName string `json:"versionName"`

	// Port is the TCP port of this worker's socket in the bundle's pods. Set by the controller
	// and kept for as long as the pair stays in the bundle, so that old and new pods agree
	// during a rolling update.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// ServiceTarget marks the version that service bindings to ScriptName, from the bundle's
	// other workers, reach: the script's active version (the one with the largest share of
	// its active deployment).
	// +optional
	ServiceTarget bool `json:"serviceTarget,omitempty"`

	// Copy says that the script lives in another bundle of the account: this bundle runs its
	// active version only so that its own workers' service bindings (fetch and RPC) reach it
	// in-process. A copy does not place the script in this bundle.
	// +optional
	Copy bool `json:"copy,omitempty"`

	// DurableObjects marks the version that hosts its script's Durable Object classes: the
	// script's active version, never a copy. A bundle with one runs a single pod on the
	// account's Durable Object storage and is replaced, not rolled: one live instance per object.
	// +optional
	DurableObjects bool `json:"durableObjects,omitempty"`
}

// FailedWorker is a (script, version) pair left out of a bundle because it did not start.
type FailedWorker struct {
	// ScriptName is the name of the Worker script.
	ScriptName string `json:"scriptName"`

	// VersionID is the ID of the version that failed.
	VersionID string `json:"versionID"`

	// Message says why, e.g. workerd's error.
	// +optional
	Message string `json:"message,omitempty"`
}

// WorkerBundleStatus is the observed state of a WorkerBundle.
type WorkerBundleStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Built (an image for the current workers exists), Available (pods are
	// ready), Ready (both, and the routes are served).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// JobBuilderName is the name of the JobBuilder of the latest build.
	// +optional
	JobBuilderName string `json:"jobBuilderName,omitempty"`

	// Image is the reference, with digest, of the image the bundle's pods run.
	// +optional
	Image string `json:"image,omitempty"`

	// Digest is the digest of Image.
	// +optional
	Digest string `json:"digest,omitempty"`

	// ReadyReplicas is the number of ready pods serving the bundle.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// FailedWorkers are the pairs left out of the bundle because they failed to start,
	// sorted by scriptName then versionID.
	// +optional
	// +listType=map
	// +listMapKey=scriptName
	// +listMapKey=versionID
	FailedWorkers []FailedWorker `json:"failedWorkers,omitempty"`
}

// WorkerBundle is a share of what one account runs: the (script, version) pairs served by
// one workerd process per pod. The account's first bundle has the name its WorkerAccount
// gives (workerBundleName); when the account has more scripts than one bundle holds, the
// rest go to bundles <name>-1, <name>-2…, each script staying in the bundle it was placed
// in, so that a deploy rebuilds and restarts one bundle only
// (docs/adr/0004-sharded-bundles.md). The gateway routes by the scripts' WorkerReleases.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wb,categories=octo
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.accountID`
// +kubebuilder:printcolumn:name="Ready Pods",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerBundle struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired content of the bundle.
	Spec WorkerBundleSpec `json:"spec"`

	// Status is the observed state of the bundle.
	// +optional
	Status WorkerBundleStatus `json:"status,omitempty"`
}

// WorkerBundleList is a list of WorkerBundles.
//
// +kubebuilder:object:root=true
type WorkerBundleList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WorkerBundles.
	Items []WorkerBundle `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkerBundle{}, &WorkerBundleList{})
}
