package controller

import (
	rbacv1 "k8s.io/api/rbac/v1"

	apiv1 "github.com/octohq/octo/api/v1"
)

// The permissions of the controllers, for a ClusterRole when they run with
// their own identity rather than the daemon's admin credentials.
//
// +kubebuilder:rbac:groups=api.cf-worker,resources=workeraccounts;workerbundles;workerreleases;workerversions;jobbuilders,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=api.cf-worker,resources=workeraccounts/status;workerbundles/status;workerreleases/status;workerversions/status;jobbuilders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;create

// PolicyRules returns the permissions the controllers need (the same as the
// kubebuilder markers above).
func PolicyRules() []rbacv1.PolicyRule {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{apiv1.Group}, Resources: []string{"workeraccounts", "workerbundles", "workerreleases", "workerversions", "jobbuilders"}, Verbs: all},
		{APIGroups: []string{apiv1.Group}, Resources: []string{"workeraccounts/status", "workerbundles/status", "workerreleases/status", "workerversions/status", "jobbuilders/status"},
			Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: all},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: all},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		// The cron scheduler finds the pods that run a script's version.
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		// ClaimObjectStorage makes a claim per account with Durable Objects.
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "create"}},
	}
}
