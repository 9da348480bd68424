package crds

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
)

var wantKinds = map[string]string{
	"WorkerAccount": "workeraccounts",
	"WorkerVersion": "workerversions",
	"WorkerRelease": "workerreleases",
	"WorkerBundle":  "workerbundles",
	"JobBuilder":    "jobbuilders",
}

func TestCRDsDecode(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, crd := range crds {
		kind := crd.Spec.Names.Kind
		kinds = append(kinds, kind)
		plural, ok := wantKinds[kind]
		if !ok {
			t.Errorf("unexpected kind %s", kind)
			continue
		}
		if crd.Spec.Group != "api.cf-worker" {
			t.Errorf("%s: group %q", kind, crd.Spec.Group)
		}
		if crd.Name != plural+".api.cf-worker" || crd.Spec.Names.Plural != plural {
			t.Errorf("%s: name %q plural %q", kind, crd.Name, crd.Spec.Names.Plural)
		}
		if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("%s: scope %s", kind, crd.Spec.Scope)
		}
		if len(crd.Spec.Names.ShortNames) == 0 || !contains(crd.Spec.Names.Categories, "octo") {
			t.Errorf("%s: short names %v, categories %v", kind, crd.Spec.Names.ShortNames, crd.Spec.Names.Categories)
		}
		if len(crd.Spec.Versions) != 1 {
			t.Fatalf("%s: %d versions", kind, len(crd.Spec.Versions))
		}
		v := crd.Spec.Versions[0]
		if v.Name != "v1" || !v.Served || !v.Storage {
			t.Errorf("%s: version %s served=%v storage=%v", kind, v.Name, v.Served, v.Storage)
		}
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", kind)
		}
		if len(v.AdditionalPrinterColumns) == 0 {
			t.Errorf("%s: no printer columns", kind)
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			t.Fatalf("%s: no schema", kind)
		}
		root := v.Schema.OpenAPIV3Schema
		status := root.Properties["status"]
		for _, f := range []string{"conditions", "observedGeneration"} {
			if _, ok := status.Properties[f]; !ok {
				t.Errorf("%s: status has no %s", kind, f)
			}
		}
		if _, ok := root.Properties["spec"]; !ok || !contains(root.Required, "spec") {
			t.Errorf("%s: spec missing or not required", kind)
		}
	}
	sort.Strings(kinds)
	if len(kinds) != len(wantKinds) {
		t.Errorf("kinds = %v, want the %d of %v", kinds, len(wantKinds), wantKinds)
	}

	// Each call returns fresh objects.
	again, _ := CRDs()
	again[0].Spec.Group = "mutated"
	if crds[0].Spec.Group == "mutated" {
		t.Error("CRDs shares objects between calls")
	}
}

// The CRDs pass the apiserver's own CRD validation, CEL rule compilation and cost limits
// included.
func TestCRDsValidate(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	for _, crd := range crds {
		crd := crd.DeepCopy()
		scheme.Default(crd)
		var internal apiextensions.CustomResourceDefinition
		if err := scheme.Convert(crd, &internal, nil); err != nil {
			t.Fatalf("%s: convert: %v", crd.Name, err)
		}
		if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
			t.Errorf("%s: %v", crd.Name, errs.ToAggregate())
		}
	}
}

// The check above is real: a CRD with a broken CEL rule fails it.
func TestCRDsValidateCatchesBadRule(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	crd := crds[0]
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	spec.XValidations = append(spec.XValidations, apiextensionsv1.ValidationRule{Rule: "self.nope("})
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	scheme.Default(crd)
	var internal apiextensions.CustomResourceDefinition
	if err := scheme.Convert(crd, &internal, nil); err != nil {
		t.Fatal(err)
	}
	errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), &internal)
	if errs.ToAggregate() == nil || !strings.Contains(errs.ToAggregate().Error(), "x-kubernetes-validations") {
		t.Errorf("broken rule accepted: %v", errs.ToAggregate())
	}
}

func TestManifest(t *testing.T) {
	data, err := Manifest("api.cf-worker_workeraccounts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "kind: CustomResourceDefinition") {
		t.Error("manifest is not a CRD")
	}
	if _, err := Manifest("nope.yaml"); err == nil {
		t.Error("missing manifest: no error")
	}
}

// establishOnWrite makes the fake apiserver mark every created or updated CRD Established,
// as the real one does shortly after.
func establishOnWrite(cs *fake.Clientset) {
	mark := func(action clienttesting.Action) (bool, runtime.Object, error) {
		var obj runtime.Object
		switch a := action.(type) {
		case clienttesting.CreateAction:
			obj = a.GetObject()
		case clienttesting.UpdateAction:
			obj = a.GetObject()
		}
		if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{
				{Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionTrue},
				{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue},
			}
		}
		return false, nil, nil // let the object tracker store it
	}
	cs.PrependReactor("create", "customresourcedefinitions", mark)
	cs.PrependReactor("update", "customresourcedefinitions", mark)
}

func TestInstallCreates(t *testing.T) {
	cs := newFake()
	establishOnWrite(cs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := InstallWith(ctx, cs); err != nil {
		t.Fatal(err)
	}
	list, err := cs.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(wantKinds) {
		t.Errorf("%d CRDs installed, want %d", len(list.Items), len(wantKinds))
	}
	// Installing again is a no-op update.
	if err := InstallWith(ctx, cs); err != nil {
		t.Fatalf("second install: %v", err)
	}
}

func TestInstallUpdatesExisting(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	old := crds[0].DeepCopy()
	old.Spec.Versions[0].AdditionalPrinterColumns = nil
	old.Labels = map[string]string{"keep": "me"}
	old.ResourceVersion = "7"
	cs := newFake(old)
	establishOnWrite(cs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := InstallWith(ctx, cs); err != nil {
		t.Fatal(err)
	}
	got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, old.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Versions[0].AdditionalPrinterColumns) == 0 {
		t.Error("existing CRD was not updated to the embedded spec")
	}
	if got.Labels["keep"] != "me" {
		t.Errorf("labels of the existing CRD lost: %v", got.Labels)
	}
}

func TestInstallNamesNotAccepted(t *testing.T) {
	cs := newFake()
	cs.PrependReactor("create", "customresourcedefinitions", func(action clienttesting.Action) (bool, runtime.Object, error) {
		crd := action.(clienttesting.CreateAction).GetObject().(*apiextensionsv1.CustomResourceDefinition)
		crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{
			Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionFalse,
			Reason: "MultipleNamesNotAllowed", Message: `"wa" is already in use`,
		}}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := InstallWith(ctx, cs)
	if err == nil || !strings.Contains(err.Error(), "names not accepted") || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v", err)
	}
	if ctx.Err() != nil {
		t.Error("did not fail fast")
	}
}

func TestInstallTimesOutNamingTheCRD(t *testing.T) {
	cs := newFake() // never Established
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := InstallWith(ctx, cs)
	if err == nil || !strings.Contains(err.Error(), "api.cf-worker to be established") {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err does not wrap the context error: %v", err)
	}
}

func TestInstallCreateError(t *testing.T) {
	cs := newFake()
	cs.PrependReactor("create", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden by test")
	})
	err := InstallWith(context.Background(), cs)
	if err == nil || !strings.Contains(err.Error(), "crds: create ") || !strings.Contains(err.Error(), "forbidden by test") {
		t.Fatalf("err = %v", err)
	}
}

func TestInstallBadConfig(t *testing.T) {
	err := Install(context.Background(), &rest.Config{Host: "http://[::1"})
	if err == nil || !strings.Contains(err.Error(), "crds:") {
		t.Fatalf("err = %v", err)
	}
}

// newFake returns a fake apiextensions clientset. NewSimpleClientset, not NewClientset: the
// latter's field-managed tracker has no type schema for CustomResourceDefinition in this
// release and rejects every create.
func newFake(objs ...runtime.Object) *fake.Clientset {
	return fake.NewSimpleClientset(objs...) //nolint:staticcheck // see above
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The chart (deploy/octo/crds) ships the same CRDs octo installs itself
// (`make generate` copies them).
func TestChartCRDsMatch(t *testing.T) {
	entries, err := files.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := filepath.Glob("../../deploy/octo/crds/*.yaml")
	if err != nil || len(chart) != len(entries) {
		t.Fatalf("chart CRDs %v (%v), want the %d of internal/crds: run make generate", chart, err, len(entries))
	}
	for _, e := range entries {
		want, err := files.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("../../deploy/octo/crds", e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("deploy/octo/crds/%s differs from internal/crds (%v): run make generate", e.Name(), err)
		}
	}
}
