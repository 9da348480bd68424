package v1_test

import (
	"fmt"
	"testing"
	"time"

	v1 "github.com/octohq/octo/api/v1"
)

func TestPushDeployment(t *testing.T) {
	r := exampleRelease()
	if got := r.ActiveDeployment(); got == nil || got.ID != r.Spec.Deployments[0].ID {
		t.Fatalf("ActiveDeployment = %v", got)
	}
	if (&v1.WorkerRelease{}).ActiveDeployment() != nil {
		t.Error("ActiveDeployment of an empty release is not nil")
	}

	older := r.Spec.Deployments[1]
	orig := append([]v1.ReleaseDeployment(nil), r.Spec.Deployments...)
	shared := r.Spec.Deployments
	r.Spec.PushDeployment(older) // a rollback re-using an ID moves it to the front
	if len(r.Spec.Deployments) != 2 || r.Spec.Deployments[0].ID != older.ID || r.Spec.Deployments[1].ID != orig[0].ID {
		t.Errorf("after push: %v", r.Spec.Deployments)
	}
	if shared[0].ID != orig[0].ID {
		t.Error("PushDeployment modified the old slice in place")
	}

	var s v1.WorkerReleaseSpec
	for i := 0; i < v1.MaxDeploymentHistory+5; i++ {
		s.PushDeployment(v1.ReleaseDeployment{ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)})
	}
	if len(s.Deployments) != v1.MaxDeploymentHistory {
		t.Errorf("history = %d, want %d", len(s.Deployments), v1.MaxDeploymentHistory)
	}
	if want := fmt.Sprintf("%08d-0000-4000-8000-000000000000", v1.MaxDeploymentHistory+4); s.Deployments[0].ID != want {
		t.Errorf("active = %s, want %s", s.Deployments[0].ID, want)
	}
}

func TestNormalize(t *testing.T) {
	b := exampleBundle()
	b.Spec.Workers = []v1.BundleWorker{
		{ScriptName: "b", VersionID: "2"}, {ScriptName: "a", VersionID: "9"}, {ScriptName: "b", VersionID: "1"},
	}
	b.Spec.Normalize()
	if got := fmt.Sprint(b.Spec.Workers); got != "[{a 9  0 false false false} {b 1  0 false false false} {b 2  0 false false false}]" {
		t.Errorf("workers = %s", got)
	}

	b.Status.FailedWorkers = []v1.FailedWorker{{ScriptName: "z"}, {ScriptName: "a", VersionID: "2"}, {ScriptName: "a", VersionID: "1"}}
	b.Status.Normalize()
	if got := fmt.Sprint(b.Status.FailedWorkers); got != "[{a 1 } {a 2 } {z  }]" {
		t.Errorf("failed = %s", got)
	}

	j := exampleJobBuilder()
	j.Spec.Inputs[0], j.Spec.Inputs[1] = j.Spec.Inputs[1], j.Spec.Inputs[0]
	j.Spec.Normalize()
	if j.Spec.Inputs[0].VersionID != exVersion2 {
		t.Errorf("inputs = %v", j.Spec.Inputs)
	}
}

func TestSecretKey(t *testing.T) {
	cases := []struct {
		b    v1.WorkerBinding
		want string
	}{
		{v1.WorkerBinding{Name: "API_KEY", Type: v1.BindingSecretText}, "API_KEY"},
		{v1.WorkerBinding{Name: "API_KEY", Type: v1.BindingSecretText, SecretRef: &v1.SecretKeyRef{Name: "s", Key: "API_KEY"}}, "API_KEY"},
		{v1.WorkerBinding{Name: "API_KEY", Type: v1.BindingSecretText, SecretRef: &v1.SecretKeyRef{Name: "s", Key: "API_KEY.v3"}}, "API_KEY.v3"},
	}
	for _, c := range cases {
		if got := c.b.SecretKey(); got != c.want {
			t.Errorf("SecretKey of %+v = %q, want %q", c.b, got, c.want)
		}
	}
}

func TestCPULimit(t *testing.T) {
	for _, c := range []struct {
		limits *v1.VersionLimits
		want   time.Duration
	}{
		{nil, v1.DefaultCPULimit},
		{&v1.VersionLimits{}, v1.DefaultCPULimit},
		{&v1.VersionLimits{CPUMs: 50}, 50 * time.Millisecond},
		{&v1.VersionLimits{CPUMs: 300000}, v1.MaxCPULimit},
	} {
		s := v1.WorkerVersionSpec{Limits: c.limits}
		if got := s.CPULimit(); got != c.want {
			t.Errorf("CPULimit(%+v) = %v, want %v", c.limits, got, c.want)
		}
	}
	if v1.DefaultCPULimit != 30*time.Second || v1.MaxCPULimit != 300000*time.Millisecond {
		t.Errorf("DefaultCPULimit %v, MaxCPULimit %v", v1.DefaultCPULimit, v1.MaxCPULimit)
	}
}
