package controller

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/crds"
)

// schemas checks the octo objects the controllers write against the CRDs
// the daemon installs (OpenAPI, list types and CEL rules), as the API server
// would; the fake client checks none of it.
type schemas struct {
	once sync.Once
	err  error
	m    map[string]*schema // by kind
}

type schema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var crdSchemas schemas

func (s *schemas) load() error {
	s.once.Do(func() {
		all, err := crds.CRDs()
		if err != nil {
			s.err = err
			return
		}
		scheme := runtime.NewScheme()
		apiextensionsinstall.Install(scheme)
		s.m = map[string]*schema{}
		for _, crd := range all {
			scheme.Default(crd)
			var internal apiextensions.CustomResourceDefinition
			if err := scheme.Convert(crd, &internal, nil); err != nil {
				s.err = err
				return
			}
			var props *apiextensions.JSONSchemaProps
			for _, v := range internal.Spec.Versions {
				if v.Name == apiv1.Version && v.Schema != nil {
					props = v.Schema.OpenAPIV3Schema
				}
			}
			if props == nil && internal.Spec.Validation != nil {
				props = internal.Spec.Validation.OpenAPIV3Schema
			}
			st, err := structuralschema.NewStructural(props)
			if err != nil {
				s.err = err
				return
			}
			v, _, err := apiservervalidation.NewSchemaValidator(props)
			if err != nil {
				s.err = err
				return
			}
			s.m[crd.Spec.Names.Kind] = &schema{structural: st, validator: v, cel: cel.NewValidator(st, true, celconfig.PerCallLimit)}
		}
	})
	return s.err
}

// check validates obj (kind given), an update of old when old is not nil.
func (s *schemas) check(t *testing.T, kind string, obj, old any) field.ErrorList {
	t.Helper()
	if err := s.load(); err != nil {
		t.Fatalf("CRD schemas: %v", err)
	}
	sc := s.m[kind]
	if sc == nil {
		return nil
	}
	o := toMap(t, obj)
	var errs field.ErrorList
	var oldMap map[string]any
	if old != nil {
		oldMap = toMap(t, old)
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, o, oldMap, sc.validator)...)
	} else {
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, o, sc.validator)...)
	}
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, sc.structural, o)...)
	var oldObj any
	if oldMap != nil {
		oldObj = oldMap
	}
	celErrs, _ := sc.cel.Validate(context.Background(), nil, sc.structural, o, oldObj, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

func toMap(t *testing.T, obj any) map[string]any {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := utiljson.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
