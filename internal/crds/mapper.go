package crds

import (
	"fmt"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// ClusterMapper is MapperFor rc with a new HTTP client; give both to
// client.New or cache.New.
func ClusterMapper(rc *rest.Config) (meta.RESTMapper, *http.Client, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("crds: HTTP client: %w", err)
	}
	m, err := MapperFor(rc, hc)
	return m, hc, err
}

// MapperFor is Mapper over controller-runtime's discovery-based mapper for
// rc; its signature is a manager's MapperProvider.
func MapperFor(rc *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	dyn, err := apiutil.NewDynamicRESTMapper(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("crds: discovery mapper: %w", err)
	}
	return Mapper(dyn)
}

// Mapper is a RESTMapper that maps the kinds of the embedded CRDs from the
// manifests themselves and asks next (a discovery-based mapper) for every
// other group. The clients octo makes right after Install (the services, the
// gateway's cache, the operators' manager all start within a second of it
// at a cold `octo up`) then never depend on when discovery starts listing
// the new group, and octo's kinds cost no discovery round trip.
func Mapper(next meta.RESTMapper) (meta.RESTMapper, error) {
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	var gvs []schema.GroupVersion
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			gvs = append(gvs, schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name})
		}
	}
	m := meta.NewDefaultRESTMapper(gvs)
	for _, crd := range crds {
		own[crd.Spec.Group] = true
		scope := meta.RESTScopeNamespace
		if crd.Spec.Scope == apiextensionsv1.ClusterScoped {
			scope = meta.RESTScopeRoot
		}
		n := crd.Spec.Names
		if n.Plural == "" || n.Kind == "" {
			return nil, fmt.Errorf("crds: %s names no plural or kind", crd.Name)
		}
		for _, v := range crd.Spec.Versions {
			gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
			singular := n.Singular
			if singular == "" {
				singular = n.Plural
			}
			// List kinds need no entry: clients map a list by its item kind.
			m.AddSpecific(gv.WithKind(n.Kind), gv.WithResource(n.Plural), gv.WithResource(singular), scope)
		}
	}
	return &splitMapper{own: m, groups: own, next: next}, nil
}

// splitMapper answers the groups in groups from own and the others from next.
type splitMapper struct {
	own    meta.RESTMapper
	groups map[string]bool
	next   meta.RESTMapper
}

func (s *splitMapper) pick(group string) meta.RESTMapper {
	if s.groups[group] {
		return s.own
	}
	return s.next
}

// KindFor implements meta.RESTMapper.
func (s *splitMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	return s.pick(r.Group).KindFor(r)
}

// KindsFor implements meta.RESTMapper.
func (s *splitMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	return s.pick(r.Group).KindsFor(r)
}

// ResourceFor implements meta.RESTMapper.
func (s *splitMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	return s.pick(r.Group).ResourceFor(r)
}

// ResourcesFor implements meta.RESTMapper.
func (s *splitMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	return s.pick(r.Group).ResourcesFor(r)
}

// RESTMapping implements meta.RESTMapper.
func (s *splitMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return s.pick(gk.Group).RESTMapping(gk, versions...)
}

// RESTMappings implements meta.RESTMapper.
func (s *splitMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	return s.pick(gk.Group).RESTMappings(gk, versions...)
}

// ResourceSingularizer implements meta.RESTMapper; resource names carry no
// group, so octo's own come first.
func (s *splitMapper) ResourceSingularizer(resource string) (string, error) {
	if r, err := s.own.ResourceSingularizer(resource); err == nil {
		return r, nil
	}
	return s.next.ResourceSingularizer(resource)
}
