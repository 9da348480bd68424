package store

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	apiv1 "github.com/octohq/octo/api/v1"
)

// TestVersionSecretKey: the key of every valid secret name, at any version
// number, is a valid Secret data key, and no two (name, number) share one.
func TestVersionSecretKey(t *testing.T) {
	longest := strings.Repeat("S", MaxSecretName)
	if err := ValidSecretName(longest); err != nil {
		t.Fatalf("longest name refused: %v", err)
	}
	if err := ValidSecretName(longest + "S"); err == nil {
		t.Error("a name too long for its key is accepted")
	}
	for _, name := range []string{"A", "api_key", "_x9", longest} {
		for _, n := range []int64{1, 12, math.MaxInt64} {
			if errs := validation.IsConfigMapKey(VersionSecretKey(name, n)); len(errs) > 0 {
				t.Errorf("VersionSecretKey(%.10q…, %d): %v", name, n, errs)
			}
		}
	}
	if VersionSecretKey("A_1", 2) == VersionSecretKey("A", 12) || VersionSecretKey("A", 12) == VersionSecretKey("A", 1) {
		t.Error("two secrets share a key")
	}
}

func TestSecretKeysInUse(t *testing.T) {
	ref := func(name, secret, key string) apiv1.WorkerBinding {
		return apiv1.WorkerBinding{Name: name, Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: secret, Key: key}}
	}
	versions := []apiv1.WorkerVersion{
		{Spec: apiv1.WorkerVersionSpec{Bindings: []apiv1.WorkerBinding{
			{Name: "LEGACY", Type: apiv1.BindingSecretText}, // no reference: the key is the name
			ref("OLD", "s", "OLD"),
			ref("ELSEWHERE", "other", "ELSEWHERE.v1"),
			{Name: "VAR", Type: apiv1.BindingPlainText, Text: "x"},
		}}},
		{Spec: apiv1.WorkerVersionSpec{Bindings: []apiv1.WorkerBinding{ref("A", "s", "A.v2")}}},
	}
	got := secretKeysInUse("s", versions, []apiv1.WorkerBinding{ref("A", "s", "A.v3")})
	if keys, want := slices.Sorted(maps.Keys(got)), []string{"A.v2", "A.v3", "LEGACY", "OLD"}; !slices.Equal(keys, want) {
		t.Errorf("keys in use = %v, want %v", keys, want)
	}
}

// TestReuseSecrets: an unchanged value keeps the previous version's key; a
// changed one, or one the Secret lacks, gets the new version's.
func TestReuseSecrets(t *testing.T) {
	ref := func(name, key string) apiv1.WorkerBinding {
		return apiv1.WorkerBinding{Name: name, Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "s", Key: key}}
	}
	prev := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{Bindings: []apiv1.WorkerBinding{
		ref("SAME", "SAME.v1"), ref("CHANGED", "CHANGED.v1"), ref("GONE", "GONE.v1"),
	}}}
	bindings := []apiv1.WorkerBinding{ref("SAME", "SAME.v2"), ref("CHANGED", "CHANGED.v2"), ref("GONE", "GONE.v2"), ref("NEW", "NEW.v2")}
	writes := map[string]string{"SAME.v2": "a", "CHANGED.v2": "new", "GONE.v2": "g", "NEW.v2": "n"}
	data := map[string][]byte{"SAME.v1": []byte("a"), "CHANGED.v1": []byte("old")}
	reuseSecrets(prev, bindings, writes, data)
	var keys []string
	for _, b := range bindings {
		keys = append(keys, b.SecretKey())
	}
	if want := []string{"SAME.v1", "CHANGED.v2", "GONE.v2", "NEW.v2"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if got, want := slices.Sorted(maps.Keys(writes)), []string{"CHANGED.v2", "GONE.v2", "NEW.v2"}; !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	if prev.Spec.Bindings[0].SecretRef == bindings[0].SecretRef {
		t.Error("the new binding shares the previous version's SecretRef")
	}
}
