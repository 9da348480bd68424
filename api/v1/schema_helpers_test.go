package v1_test

import (
	"context"
	"encoding/json"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/octohq/octo/internal/crds"
)

// crdSchema is the schema of one kind, in the forms the apiserver uses to admit custom resources.
type crdSchema struct {
	crd        *apiextensionsv1.CustomResourceDefinition
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// loadSchema finds the embedded CRD of kind and prepares its v1 schema.
func loadSchema(t *testing.T, kind string) *crdSchema {
	t.Helper()
	all, err := crds.CRDs()
	if err != nil {
		t.Fatalf("CRDs: %v", err)
	}
	var crd *apiextensionsv1.CustomResourceDefinition
	for _, c := range all {
		if c.Spec.Names.Kind == kind {
			crd = c
		}
	}
	if crd == nil {
		t.Fatalf("no CRD for kind %s", kind)
	}
	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	scheme.Default(crd)
	var internal apiextensions.CustomResourceDefinition
	if err := scheme.Convert(crd, &internal, nil); err != nil {
		t.Fatalf("convert %s CRD: %v", kind, err)
	}
	var props *apiextensions.JSONSchemaProps
	for _, v := range internal.Spec.Versions {
		if v.Name == "v1" && v.Schema != nil {
			props = v.Schema.OpenAPIV3Schema
		}
	}
	if props == nil && internal.Spec.Validation != nil {
		// The internal form keeps a schema shared by all versions at the top level.
		props = internal.Spec.Validation.OpenAPIV3Schema
	}
	if props == nil {
		t.Fatalf("%s CRD has no v1 schema", kind)
	}
	structural, err := structuralschema.NewStructural(props)
	if err != nil {
		t.Fatalf("%s schema is not structural: %v", kind, err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		t.Fatalf("%s schema validator: %v", kind, err)
	}
	return &crdSchema{
		crd:        crd,
		internal:   props,
		structural: structural,
		validator:  validator,
		cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),
	}
}

// admit runs on obj what the apiserver runs on a custom resource it receives: pruning of
// unknown fields, defaulting, then OpenAPI, list-type, metadata and CEL validation (with old
// for an update, nil for a create). It returns the pruned field paths and the errors.
func (s *crdSchema) admit(obj, old map[string]any) (pruned []string, errs field.ErrorList) {
	pruned = pruning.PruneWithOptions(obj, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	structuraldefaulting.Default(obj, s.structural)

	if old == nil {
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, s.validator)...)
	} else {
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, obj, old, s.validator)...)
	}
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	if md, ok := obj["metadata"].(map[string]any); ok {
		if name, _ := md["name"].(string); name != "" {
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), name, msg))
			}
		}
		if labels, ok := md["labels"].(map[string]any); ok {
			l := map[string]string{}
			for k, v := range labels {
				s, _ := v.(string)
				l[k] = s
			}
			errs = append(errs, metav1validation.ValidateLabels(l, field.NewPath("metadata", "labels"))...)
		}
	}
	if s.cel != nil {
		var oldObj any
		if old != nil {
			oldObj = old
		}
		celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, oldObj, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return pruned, errs
}

// toMap turns a typed object into the unstructured form the apiserver decodes (integers as
// int64).
func toMap(t *testing.T, obj any) map[string]any {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return jsonMap(t, data)
}

func jsonMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := utiljson.Unmarshal(data, &m); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return m
}

func yamlMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return jsonMap(t, j)
}
