package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobBuilderPhase is the state of one build.
// +kubebuilder:validation:Enum=Pending;Building;Succeeded;Failed
type JobBuilderPhase string

// JobBuilder phases.
const (
	// JobBuilderPending: the build has not started.
	JobBuilderPending JobBuilderPhase = "Pending"
	// JobBuilderBuilding: the build is running.
	JobBuilderBuilding JobBuilderPhase = "Building"
	// JobBuilderSucceeded: the image was pushed; status.image and status.digest name it.
	JobBuilderSucceeded JobBuilderPhase = "Succeeded"
	// JobBuilderFailed: the build failed; status.message says why.
	JobBuilderFailed JobBuilderPhase = "Failed"
)

// JobBuilderSpec describes one image build of a bundle. It is immutable: another build is
// another JobBuilder.
type JobBuilderSpec struct {
	// AccountID is the ID of the account whose bundle is built.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountID string `json:"accountID,omitempty"`

	// BundleName is the name of the WorkerBundle, in the same namespace, this build is for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	BundleName string `json:"bundleName"`

	// Inputs are the versions built into the image, sorted by scriptName then versionID.
	// Version names are unique.
	// +listType=map
	// +listMapKey=versionName
	// +kubebuilder:validation:MaxItems=1000
	Inputs []BuildInput `json:"inputs"`

	// BaseImage is the reference of the base image holding workerd, preferably by digest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseImage string `json:"baseImage"`

	// TargetImage is the repository the image is pushed to, without tag or digest, e.g.
	// "127.0.0.1:5000/octo/<account>". The pushed image is named by digest in status.image.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	TargetImage string `json:"targetImage"`
}

// BuildInput is one version built into an image.
type BuildInput struct {
	// VersionName is the name of the WorkerVersion object, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	VersionName string `json:"versionName"`

	// ScriptName is the version's script.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_-]{0,62}$`
	ScriptName string `json:"scriptName,omitempty"`

	// VersionID is the version's ID.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	VersionID string `json:"versionID,omitempty"`

	// Digest identifies the version's content (metadata and modules), "sha256:<hex>".
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	Digest string `json:"digest"`

	// Port is the TCP port of the version's socket in the image's workerd config.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// ServiceTarget marks the version that service bindings to its script, from the build's
	// other versions, reach.
	// +optional
	ServiceTarget bool `json:"serviceTarget,omitempty"`

	// DurableObjects marks the version that hosts its script's Durable Object classes
	// (BundleWorker.DurableObjects).
	// +optional
	DurableObjects bool `json:"durableObjects,omitempty"`
}

// JobBuilderStatus is the observed state of a build.
type JobBuilderStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Building, Succeeded or Failed.
	// +optional
	Phase JobBuilderPhase `json:"phase,omitempty"`

	// Digest is the digest of the pushed image manifest.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Image is the pushed image, by digest: <targetImage>@<digest>.
	// +optional
	Image string `json:"image,omitempty"`

	// StartedAt is when the build started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// FinishedAt is when the build succeeded or failed.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`

	// Message explains the phase, e.g. the build error.
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions: Built is True when the image was pushed, False when the build failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// JobBuilder is one image build of a WorkerBundle: a layer with the workerd config and the
// modules of its inputs on top of the workerd base image, pushed to the registry.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=jb,categories=octo
// +kubebuilder:printcolumn:name="Bundle",type=string,JSONPath=`.spec.bundleName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type JobBuilder struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the build. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
	Spec JobBuilderSpec `json:"spec"`

	// Status is the observed state of the build.
	// +optional
	Status JobBuilderStatus `json:"status,omitempty"`
}

// JobBuilderList is a list of JobBuilders.
//
// +kubebuilder:object:root=true
type JobBuilderList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the JobBuilders.
	Items []JobBuilder `json:"items"`
}

func init() {
	SchemeBuilder.Register(&JobBuilder{}, &JobBuilderList{})
}
