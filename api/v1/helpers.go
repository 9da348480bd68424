package v1

import (
	"cmp"
	"slices"
	"time"
)

// ActiveDeployment returns the active deployment of the release, the first of
// spec.deployments, or nil if the script was never deployed.
func (r *WorkerRelease) ActiveDeployment() *ReleaseDeployment {
	if len(r.Spec.Deployments) == 0 {
		return nil
	}
	return &r.Spec.Deployments[0]
}

// PushDeployment makes d the active deployment: it puts d first, removes an older entry with
// the same ID, and drops the oldest deployments beyond MaxDeploymentHistory.
func (s *WorkerReleaseSpec) PushDeployment(d ReleaseDeployment) {
	rest := slices.DeleteFunc(slices.Clone(s.Deployments), func(x ReleaseDeployment) bool { return x.ID == d.ID })
	s.Deployments = append([]ReleaseDeployment{d}, rest...)
	if len(s.Deployments) > MaxDeploymentHistory {
		s.Deployments = s.Deployments[:MaxDeploymentHistory]
	}
}

// Normalize puts the spec's workers in their canonical order, by scriptName then versionID,
// so that equal content gives equal objects.
func (s *WorkerBundleSpec) Normalize() {
	slices.SortFunc(s.Workers, func(a, b BundleWorker) int {
		return cmp.Or(cmp.Compare(a.ScriptName, b.ScriptName), cmp.Compare(a.VersionID, b.VersionID))
	})
}

// Normalize sorts the failed workers by scriptName then versionID.
func (s *WorkerBundleStatus) Normalize() {
	slices.SortFunc(s.FailedWorkers, func(a, b FailedWorker) int {
		return cmp.Or(cmp.Compare(a.ScriptName, b.ScriptName), cmp.Compare(a.VersionID, b.VersionID))
	})
}

// Normalize sorts the inputs by scriptName, then versionID, then versionName.
func (s *JobBuilderSpec) Normalize() {
	slices.SortFunc(s.Inputs, func(a, b BuildInput) int {
		return cmp.Or(cmp.Compare(a.ScriptName, b.ScriptName), cmp.Compare(a.VersionID, b.VersionID),
			cmp.Compare(a.VersionName, b.VersionName))
	})
}

// SecretKey is the data key of the binding's value in its Secret: SecretRef.Key, or the
// binding's name when it has no SecretRef. Versions pin secret values under their own keys,
// so it also names the value's environment variable in the pods.
func (b WorkerBinding) SecretKey() string {
	if b.SecretRef != nil && b.SecretRef.Key != "" {
		return b.SecretRef.Key
	}
	return b.Name
}

// CPULimit is the CPU time one request of the version may use: its limits.cpu_ms, or
// DefaultCPULimit when it sets none.
func (s *WorkerVersionSpec) CPULimit() time.Duration {
	if s.Limits == nil || s.Limits.CPUMs <= 0 {
		return DefaultCPULimit
	}
	return time.Duration(s.Limits.CPUMs) * time.Millisecond
}
