package crds

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// refusingMapper stands for discovery: it knows nothing and counts the asks.
type refusingMapper struct {
	meta.RESTMapper
	asked int
}

func (r *refusingMapper) RESTMapping(gk schema.GroupKind, _ ...string) (*meta.RESTMapping, error) {
	r.asked++
	return nil, &meta.NoKindMatchError{GroupKind: gk}
}

func TestMapperAnswersOwnKindsWithoutDiscovery(t *testing.T) {
	next := &refusingMapper{}
	m, err := Mapper(next)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		mapping, err := m.RESTMapping(gk)
		if err != nil {
			t.Fatalf("RESTMapping(%v): %v", gk, err)
		}
		if mapping.Resource.Resource != crd.Spec.Names.Plural || mapping.Scope.Name() != meta.RESTScopeNameNamespace {
			t.Errorf("%v maps to %v (scope %s), want %s, namespaced", gk, mapping.Resource, mapping.Scope.Name(), crd.Spec.Names.Plural)
		}
		gvk, err := m.KindFor(schema.GroupVersionResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural})
		if err != nil || gvk.Kind != crd.Spec.Names.Kind {
			t.Errorf("KindFor(%s) = %v, %v", crd.Spec.Names.Plural, gvk, err)
		}
	}
	if next.asked != 0 {
		t.Errorf("discovery was asked %d times for octo's own kinds", next.asked)
	}
	// Other groups go to discovery.
	_, err = m.RESTMapping(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	var nm *meta.NoKindMatchError
	if !errors.As(err, &nm) || next.asked != 1 {
		t.Errorf("apps/Deployment: %v, discovery asked %d times, want it asked once", err, next.asked)
	}
}
