package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkerAccountSpec is the desired state of a WorkerAccount.
type WorkerAccountSpec struct {
	// WorkerBundleName names the WorkerBundle, in the same namespace, that runs this account's
	// workers.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	WorkerBundleName string `json:"workerBundleName"`

	// WorkerReleaseSelector selects, by label, the WorkerReleases that belong to this account
	// in addition to those whose spec.accountID is the account's name.
	// +optional
	WorkerReleaseSelector *metav1.LabelSelector `json:"workerReleaseSelector,omitempty"`

	// PodTemplate holds the settings of the pods that run the account's bundle.
	// +optional
	PodTemplate WorkerPodTemplate `json:"podTemplate,omitempty"`

	// DisplayName is the account's human-readable name, as the Cloudflare API reports it.
	// Defaults to the object name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// Subdomain is the account's workers subdomain: a script is served on
	// <script>.<subdomain>.workers.localhost. Defaults to a name derived from the account.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Subdomain string `json:"subdomain,omitempty"`
}

// WorkerPodTemplate holds the pod settings of the workloads that run a bundle.
type WorkerPodTemplate struct {
	// ImagePullSecret names a Secret of type kubernetes.io/dockerconfigjson, in the same
	// namespace, used to pull the bundle image. Empty for the embedded registry.
	// +optional
	ImagePullSecret string `json:"imagePullSecret,omitempty"`

	// Resources are the compute resources of the workerd container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// WorkerAccountStatus is the observed state of a WorkerAccount.
type WorkerAccountStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True once the account's WorkerBundle exists and is ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// BundleName is the name of the WorkerBundle the controller manages for this account.
	// +optional
	BundleName string `json:"bundleName,omitempty"`

	// Subdomain is the workers subdomain in effect (spec.subdomain or the default).
	// +optional
	Subdomain string `json:"subdomain,omitempty"`
}

// WorkerAccount is one Cloudflare account served by octo. Its metadata.name is the account ID
// (32 hex digits for accounts created by octo).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wa,categories=octo
// +kubebuilder:printcolumn:name="Bundle",type=string,JSONPath=`.spec.workerBundleName`
// +kubebuilder:printcolumn:name="Subdomain",type=string,JSONPath=`.status.subdomain`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerAccount struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the account.
	Spec WorkerAccountSpec `json:"spec"`

	// Status is the observed state of the account.
	// +optional
	Status WorkerAccountStatus `json:"status,omitempty"`
}

// WorkerAccountList is a list of WorkerAccounts.
//
// +kubebuilder:object:root=true
type WorkerAccountList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WorkerAccounts.
	Items []WorkerAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkerAccount{}, &WorkerAccountList{})
}
