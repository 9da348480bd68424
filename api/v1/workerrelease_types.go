package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeploymentStrategy is how a deployment splits traffic between its versions.
// +kubebuilder:validation:Enum=percentage
type DeploymentStrategy string

// DeploymentStrategyPercentage splits requests between versions by percentage; the only
// strategy Cloudflare offers.
const DeploymentStrategyPercentage DeploymentStrategy = "percentage"

// WorkerReleaseSpec is the deployment history of one script. The first deployment is the
// active one; a rollback is a new deployment.
type WorkerReleaseSpec struct {
	// AccountID is the ID of the account that owns the script.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountID string `json:"accountID"`

	// ScriptName is the name of the Worker script.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_-]{0,62}$`
	ScriptName string `json:"scriptName"`

	// Deployments are the script's deployments, newest first: deployments[0] is the active
	// one. At most 100 are kept; controllers drop the oldest. IDs are unique.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=100
	Deployments []ReleaseDeployment `json:"deployments,omitempty"`
}

// ReleaseDeployment is one deployment of a script: which versions serve it, and in what share.
type ReleaseDeployment struct {
	// ID is the deployment's ID, a UUID.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	ID string `json:"id"`

	// CreatedOn is when the deployment was made.
	CreatedOn metav1.Time `json:"createdOn"`

	// Source is what made the deployment, e.g. "wrangler", "api", "dashboard".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Source string `json:"source,omitempty"`

	// AuthorEmail is the e-mail address of the deployer, if known.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	AuthorEmail string `json:"authorEmail,omitempty"`

	// Annotations are the Cloudflare deployment annotations, e.g. workers/message and
	// workers/triggered_by.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Annotations map[string]string `json:"annotations,omitempty"`

	// Strategy is how traffic is split; only "percentage".
	// +kubebuilder:default=percentage
	// +optional
	Strategy DeploymentStrategy `json:"strategy,omitempty"`

	// Versions are the versions that serve the script and their shares, which add up to 100.
	// Version IDs are unique.
	// +listType=map
	// +listMapKey=versionID
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:XValidation:rule="self.map(v, v.percentage).sum() == 100",message="percentages must add up to 100"
	Versions []VersionTraffic `json:"versions"`
}

// WorkerReleaseStatus is the observed state of a WorkerRelease.
type WorkerReleaseStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the active deployment's versions are served.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ActiveDeploymentID is the ID of the deployment the gateway serves now. It lags
	// spec.deployments[0].id while a new deployment rolls out.
	// +optional
	ActiveDeploymentID string `json:"activeDeploymentID,omitempty"`

	// URL is where the script is served, e.g. http://<script>.<subdomain>.workers.localhost:8787.
	// +optional
	URL string `json:"url,omitempty"`
}

// WorkerRelease is the deployment history of one Worker script: its active deployment
// (versions with percentages) first, then the older ones.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wr,categories=octo
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.accountID`,priority=1
// +kubebuilder:printcolumn:name="Script",type=string,JSONPath=`.spec.scriptName`
// +kubebuilder:printcolumn:name="Deployment",type=string,JSONPath=`.spec.deployments[0].id`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerRelease struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the deployment history.
	Spec WorkerReleaseSpec `json:"spec"`

	// Status is the observed state of the release.
	// +optional
	Status WorkerReleaseStatus `json:"status,omitempty"`
}

// WorkerReleaseList is a list of WorkerReleases.
//
// +kubebuilder:object:root=true
type WorkerReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WorkerReleases.
	Items []WorkerRelease `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkerRelease{}, &WorkerReleaseList{})
}
