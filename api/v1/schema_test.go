package v1_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"

	v1 "github.com/octohq/octo/api/v1"
)

const seedFile = "testdata/workeraccount-sample.yaml"

// The original sample WorkerAccount must apply unchanged: no field pruned, no validation error.
func TestSeedWorkerAccountAdmitted(t *testing.T) {
	data, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	s := loadSchema(t, "WorkerAccount")
	obj := yamlMap(t, data)
	pruned, errs := s.admit(obj, nil)
	if len(pruned) > 0 {
		t.Errorf("the apiserver would drop fields of the seed sample: %v", pruned)
	}
	if len(errs) > 0 {
		t.Errorf("the seed sample does not validate: %v", errs.ToAggregate())
	}

	// The Go type reads every field of it too.
	var wa v1.WorkerAccount
	if err := yaml.UnmarshalStrict(data, &wa); err != nil {
		t.Fatalf("strict decode into WorkerAccount: %v", err)
	}
	if wa.Name != "398803b74bcdb1b454434669bc634190" || wa.Spec.WorkerBundleName != "worker-bundle-name" ||
		wa.Spec.PodTemplate.ImagePullSecret != "insert-secret-here" ||
		wa.Spec.WorkerReleaseSelector == nil || wa.Spec.WorkerReleaseSelector.MatchLabels["accounts"] != "1234" ||
		wa.Labels["app.kubernetes.io/created-by"] != "workerbundle" {
		t.Errorf("decoded sample lost fields: %+v", wa)
	}
	if wa.GroupVersionKind() != v1.GroupVersion.WithKind("WorkerAccount") {
		t.Errorf("sample GVK = %v", wa.GroupVersionKind())
	}
}

// The check above is real: with a field missing from the schema, the sample would be pruned.
func TestPruningDetectsMissingSchemaField(t *testing.T) {
	data, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	s := loadSchema(t, "WorkerAccount")
	crippled := s.structural.DeepCopy()
	pt := crippled.Properties["spec"].Properties["podTemplate"]
	delete(pt.Properties, "imagePullSecret")
	pruned := pruning.PruneWithOptions(yamlMap(t, data), crippled, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if len(pruned) != 1 || pruned[0] != "spec.podTemplate.imagePullSecret" {
		t.Errorf("pruned = %v, want [spec.podTemplate.imagePullSecret]", pruned)
	}
}

type example struct {
	kind string
	obj  runtime.Object
}

func examples() []example {
	return []example{
		{"WorkerAccount", exampleAccount()},
		{"WorkerVersion", exampleVersion()},
		{"WorkerRelease", exampleRelease()},
		{"WorkerBundle", exampleBundle()},
		{"JobBuilder", exampleJobBuilder()},
	}
}

// Fully populated objects of every kind are admitted whole, and read back equal.
func TestExamplesAdmitted(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.kind, func(t *testing.T) {
			s := loadSchema(t, ex.kind)
			obj := toMap(t, ex.obj)
			pruned, errs := s.admit(obj, nil)
			if len(pruned) > 0 {
				t.Errorf("pruned: %v", pruned)
			}
			if len(errs) > 0 {
				t.Errorf("errors: %v", errs.ToAggregate())
			}
			back := reflect.New(reflect.TypeOf(ex.obj).Elem()).Interface().(runtime.Object)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, back, true); err != nil {
				t.Fatalf("from unstructured: %v", err)
			}
			if !equality.Semantic.DeepEqual(ex.obj, back) {
				t.Errorf("round trip through the schema changed the object:\nwant %#v\ngot  %#v", ex.obj, back)
			}
		})
	}
}

// The schemas reject what they should, with the apiserver's own validators.
func TestSchemaRejects(t *testing.T) {
	type tc struct {
		name string
		kind string
		obj  func(t *testing.T) map[string]any
		want string // substring of the aggregated error
	}
	seed := func(t *testing.T) map[string]any {
		data, err := os.ReadFile(seedFile)
		if err != nil {
			t.Fatal(err)
		}
		return yamlMap(t, data)
	}
	cases := []tc{
		{"account without bundle name", "WorkerAccount", func(t *testing.T) map[string]any {
			o := seed(t)
			delete(o["spec"].(map[string]any), "workerBundleName")
			return o
		}, "spec.workerBundleName: Required value"},
		{"account bundle name not DNS", "WorkerAccount", func(t *testing.T) map[string]any {
			a := exampleAccount()
			a.Spec.WorkerBundleName = "Bad_Name"
			return toMap(t, a)
		}, "spec.workerBundleName"},
		{"account bad subdomain", "WorkerAccount", func(t *testing.T) map[string]any {
			a := exampleAccount()
			a.Spec.Subdomain = "a.b"
			return toMap(t, a)
		}, "spec.subdomain"},
		{"version bad script name", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.ScriptName = "Hello World"
			return toMap(t, v)
		}, "spec.scriptName"},
		{"version bad uuid", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.VersionID = "not-a-uuid"
			return toMap(t, v)
		}, "spec.versionID"},
		{"version number 0", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Number = 0
			return toMap(t, v)
		}, "spec.number"},
		{"version unknown module type", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Modules[0].Type = "typescript"
			return toMap(t, v)
		}, "spec.modules[0].type: Unsupported value"},
		{"version duplicate module", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Modules = append(v.Spec.Modules, v.Spec.Modules[0])
			return toMap(t, v)
		}, "spec.modules[3]: Duplicate value"},
		{"version main module missing", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.MainModule = "main.js"
			return toMap(t, v)
		}, "mainModule must name one of modules"},
		{"version main module and body part", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.BodyPart = "index.js"
			return toMap(t, v)
		}, "exactly one of mainModule and bodyPart"},
		{"version bad sha256", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Modules[0].SHA256 = "abc"
			return toMap(t, v)
		}, "spec.modules[0].sha256"},
		{"version bad compatibility date", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.CompatibilityDate = "2025-1-1"
			return toMap(t, v)
		}, "spec.compatibilityDate"},
		{"version cpu limit over 5 minutes", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Limits.CPUMs = 300001
			return toMap(t, v)
		}, "spec.limits.cpuMs"},
		{"version negative cpu limit", "WorkerVersion", func(t *testing.T) map[string]any {
			v := exampleVersion()
			v.Spec.Limits.CPUMs = -1
			return toMap(t, v)
		}, "spec.limits.cpuMs"},
		{"release percentages add to 99", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[0].Versions[1].Percentage = 9
			return toMap(t, r)
		}, "percentages must add up to 100"},
		{"release percentage over 100", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[1].Versions[0].Percentage = 101
			return toMap(t, r)
		}, "spec.deployments[1].versions[0].percentage"},
		{"release three versions", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[0].Versions = []v1.VersionTraffic{
				{VersionID: exVersion1, Percentage: 50}, {VersionID: exVersion2, Percentage: 25},
				{VersionID: "99999999-2222-4333-8444-555555555555", Percentage: 25},
			}
			return toMap(t, r)
		}, "spec.deployments[0].versions: Too many"},
		{"release duplicate version", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[0].Versions[1].VersionID = exVersion1
			return toMap(t, r)
		}, "spec.deployments[0].versions[1]: Duplicate value"},
		{"release duplicate deployment", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[1].ID = r.Spec.Deployments[0].ID
			return toMap(t, r)
		}, "spec.deployments[1]: Duplicate value"},
		{"release unknown strategy", "WorkerRelease", func(t *testing.T) map[string]any {
			r := exampleRelease()
			r.Spec.Deployments[0].Strategy = "canary"
			return toMap(t, r)
		}, "spec.deployments[0].strategy: Unsupported value"},
		{"bundle duplicate worker", "WorkerBundle", func(t *testing.T) map[string]any {
			b := exampleBundle()
			b.Spec.Workers[1].VersionID = b.Spec.Workers[0].VersionID
			return toMap(t, b)
		}, "spec.workers[1]: Duplicate value"},
		{"bundle port out of range", "WorkerBundle", func(t *testing.T) map[string]any {
			b := exampleBundle()
			b.Spec.Workers[0].Port = 70000
			return toMap(t, b)
		}, "spec.workers[0].port"},
		{"job builder bad digest", "JobBuilder", func(t *testing.T) map[string]any {
			j := exampleJobBuilder()
			j.Spec.Inputs[0].Digest = exSHA
			return toMap(t, j)
		}, "spec.inputs[0].digest"},
		{"job builder bad phase", "JobBuilder", func(t *testing.T) map[string]any {
			j := exampleJobBuilder()
			j.Status.Phase = "Done"
			return toMap(t, j)
		}, "status.phase: Unsupported value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := loadSchema(t, c.kind)
			_, errs := s.admit(c.obj(t), nil)
			if len(errs) == 0 {
				t.Fatalf("admitted; want an error containing %q", c.want)
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, c.want) {
				t.Errorf("error %q does not contain %q", got, c.want)
			}
		})
	}
}

// WorkerVersion and JobBuilder specs cannot change; their status can.
func TestImmutableSpecs(t *testing.T) {
	type tc struct {
		kind    string
		old     runtime.Object
		specMod func(runtime.Object)
		statMod func(runtime.Object)
	}
	cases := []tc{
		{"WorkerVersion", exampleVersion(),
			func(o runtime.Object) { o.(*v1.WorkerVersion).Spec.Number = 3 },
			func(o runtime.Object) { o.(*v1.WorkerVersion).Status.Phase = v1.WorkerVersionFailed }},
		{"JobBuilder", exampleJobBuilder(),
			func(o runtime.Object) { o.(*v1.JobBuilder).Spec.TargetImage = "elsewhere/x" },
			func(o runtime.Object) { o.(*v1.JobBuilder).Status.Phase = v1.JobBuilderFailed }},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			s := loadSchema(t, c.kind)
			old := toMap(t, c.old)

			changed := c.old.DeepCopyObject()
			c.specMod(changed)
			_, errs := s.admit(toMap(t, changed), old)
			if got := errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), "spec is immutable") {
				t.Errorf("spec change: got %v, want 'spec is immutable'", got)
			}

			status := c.old.DeepCopyObject()
			c.statMod(status)
			if _, errs := s.admit(toMap(t, status), old); len(errs) > 0 {
				t.Errorf("status change rejected: %v", errs.ToAggregate())
			}
		})
	}
}

// Every pattern written into a kubebuilder marker agrees with the exported Go constant.
func TestPatternsMatchConstants(t *testing.T) {
	want := map[string]string{
		"accountID":         v1.AccountIDPattern,
		"scriptName":        v1.ScriptNamePattern,
		"versionID":         v1.UUIDPattern,
		"id":                v1.UUIDPattern,
		"sha256":            v1.SHA256Pattern,
		"digest":            v1.DigestPattern,
		"compatibilityDate": v1.CompatibilityDatePattern,
		"subdomain":         v1.AccountIDPattern,
	}
	seen := map[string]int{}
	for _, ex := range examples() {
		s := loadSchema(t, ex.kind)
		var walk func(path string, p *structuralschema.Structural)
		walk = func(path string, p *structuralschema.Structural) {
			if p == nil {
				return
			}
			for name, child := range p.Properties {
				child := child
				if w, ok := want[name]; ok && child.ValueValidation != nil && child.ValueValidation.Pattern != "" {
					seen[name]++
					if child.ValueValidation.Pattern != w {
						t.Errorf("%s %s.%s pattern %q, want %q", ex.kind, path, name, child.ValueValidation.Pattern, w)
					}
				}
				walk(path+"."+name, &child)
			}
			if p.Items != nil {
				walk(path+"[]", p.Items)
			}
		}
		walk("", s.structural)
	}
	for name := range want {
		if seen[name] == 0 {
			t.Errorf("no %s field has a pattern", name)
		}
		if _, err := regexp.Compile(want[name]); err != nil {
			t.Errorf("pattern of %s: %v", name, err)
		}
	}
	if !regexp.MustCompile(v1.AccountIDPattern).MatchString("398803b74bcdb1b454434669bc634190") {
		t.Error("the seed account ID does not match AccountIDPattern")
	}
}

// The printer columns point at fields the schema has.
func TestPrinterColumnsResolve(t *testing.T) {
	for _, ex := range examples() {
		s := loadSchema(t, ex.kind)
		for _, v := range s.crd.Spec.Versions {
			if len(v.AdditionalPrinterColumns) == 0 {
				t.Errorf("%s has no printer columns", ex.kind)
			}
			for _, col := range v.AdditionalPrinterColumns {
				path := strings.TrimPrefix(col.JSONPath, ".")
				if i := strings.IndexAny(path, "[?"); i >= 0 {
					path = path[:i]
				}
				p := s.structural
				for _, part := range strings.Split(path, ".") {
					if part == "metadata" {
						break
					}
					child, ok := p.Properties[part]
					if !ok {
						t.Errorf("%s column %q: no field %q in the schema", ex.kind, col.Name, part)
						break
					}
					p = &child
				}
			}
		}
	}
}
