// Package v1 holds octo's custom resources: group api.cf-worker, version v1.
//
// The kinds follow the path of an upload to a serving Worker (docs/adr/0001-object-flow.md):
//
//   - WorkerAccount: one Cloudflare account (metadata.name is the account ID); names its WorkerBundle.
//   - WorkerVersion: one uploaded version of a script; immutable.
//   - WorkerRelease: per script, the active deployment (versions with percentages) and its history.
//   - WorkerBundle: per account, the (script, version) pairs that must run, a port each.
//   - JobBuilder: one image build of a bundle.
//
// Every kind is namespaced and has a status subresource with metav1.Condition conditions and
// observedGeneration. Lists that carry meaning in their order are ordered deterministically; none
// of the types uses a map whose iteration order matters.
//
// +kubebuilder:object:generate=true
// +groupName=api.cf-worker
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// Group is the API group of every octo custom resource.
const Group = "api.cf-worker"

// Version is the API version of this package.
const Version = "v1"

var (
	// GroupVersion is the group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource returns the GroupResource of the given plural resource name in this group,
// as the apierrors helpers (NewNotFound, NewConflict, ...) expect it.
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}
