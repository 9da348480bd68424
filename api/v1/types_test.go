package v1_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/randfill"

	v1 "github.com/octohq/octo/api/v1"
)

// filler fills every field of an object with random values that still marshal to JSON.
func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0).NumElements(1, 3).Funcs(
		func(m *metav1.ObjectMeta, c randfill.Continue) {
			*m = metav1.ObjectMeta{Name: "x", Namespace: "ns", Labels: map[string]string{"a": c.String(5)}}
		},
		func(m *metav1.TypeMeta, c randfill.Continue) { *m = metav1.TypeMeta{} },
		func(ts *metav1.Time, c randfill.Continue) {
			*ts = metav1.Unix(c.Int63n(4_000_000_000), 0).Rfc3339Copy()
		},
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewMilliQuantity(c.Int63n(100_000), resource.DecimalSI)
		},
		func(j *apiextensionsv1.JSON, c randfill.Continue) {
			k, _ := json.Marshal(c.String(8))
			j.Raw = []byte(fmt.Sprintf(`{"k":%s,"n":[%d]}`, k, c.Int63n(1000)))
		},
	)
}

func kinds() []runtime.Object {
	return []runtime.Object{
		&v1.WorkerAccount{}, &v1.WorkerVersion{}, &v1.WorkerRelease{}, &v1.WorkerBundle{}, &v1.JobBuilder{},
	}
}

func lists() []runtime.Object {
	return []runtime.Object{
		&v1.WorkerAccountList{}, &v1.WorkerVersionList{}, &v1.WorkerReleaseList{}, &v1.WorkerBundleList{}, &v1.JobBuilderList{},
	}
}

// Every field of the Go types is in the CRD schema: a randomly filled object of each kind loses
// nothing to pruning. Fails when a field is added to a type and `make generate` is not run.
func TestSchemaCoversGoTypes(t *testing.T) {
	for _, proto := range kinds() {
		kind := reflect.TypeOf(proto).Elem().Name()
		t.Run(kind, func(t *testing.T) {
			s := loadSchema(t, kind)
			for seed := int64(0); seed < 20; seed++ {
				obj := proto.DeepCopyObject()
				filler(seed).Fill(obj)
				m := toMap(t, obj)
				pruned := pruning.PruneWithOptions(m, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
				if len(pruned) > 0 {
					t.Fatalf("seed %d: fields missing from the %s schema: %v", seed, kind, pruned)
				}
			}
		})
	}
}

// DeepCopy returns an equal object that shares no memory with the original.
func TestDeepCopyRoundTrip(t *testing.T) {
	for _, proto := range append(kinds(), lists()...) {
		name := reflect.TypeOf(proto).Elem().Name()
		t.Run(name, func(t *testing.T) {
			for seed := int64(0); seed < 20; seed++ {
				orig := proto.DeepCopyObject()
				filler(seed).Fill(orig)
				before, err := json.Marshal(orig)
				if err != nil {
					t.Fatal(err)
				}

				cp := orig.DeepCopyObject()
				if !equality.Semantic.DeepEqual(orig, cp) {
					t.Fatalf("seed %d: copy differs", seed)
				}
				if reflect.TypeOf(cp) != reflect.TypeOf(orig) {
					t.Fatalf("DeepCopyObject returned %T", cp)
				}
				scribble(reflect.ValueOf(cp))
				after, _ := json.Marshal(orig)
				if string(before) != string(after) {
					t.Fatalf("seed %d: changing the copy changed the original:\n%s\n%s", seed, before, after)
				}

				// And through JSON, the wire format.
				back := proto.DeepCopyObject()
				if err := json.Unmarshal(before, back); err != nil {
					t.Fatal(err)
				}
				if !equality.Semantic.DeepEqual(orig, back) {
					t.Fatalf("seed %d: JSON round trip differs", seed)
				}
			}
		})
	}
}

// scribble changes, in place, every string, number and bool reachable from v, and every byte
// of byte slices, so that memory shared with another object shows.
func scribble(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			scribble(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(resource.Quantity{}) {
			if v.CanSet() {
				v.Set(reflect.ValueOf(resource.MustParse("7")))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			scribble(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			scribble(e)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(v.String() + "~")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.CanSet() {
			v.SetInt(v.Int() + 1)
		}
	case reflect.Uint8:
		if v.CanSet() {
			v.SetUint(v.Uint() ^ 0xff)
		}
	case reflect.Bool:
		if v.CanSet() {
			v.SetBool(!v.Bool())
		}
	}
}

func TestAddToScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"WorkerAccount", "WorkerVersion", "WorkerRelease", "WorkerBundle", "JobBuilder"} {
		for _, k := range []string{kind, kind + "List"} {
			gvk := v1.GroupVersion.WithKind(k)
			obj, err := scheme.New(gvk)
			if err != nil {
				t.Errorf("%s not registered: %v", gvk, err)
				continue
			}
			gvks, _, err := scheme.ObjectKinds(obj)
			if err != nil || len(gvks) != 1 || gvks[0] != gvk {
				t.Errorf("%s: ObjectKinds = %v, %v", k, gvks, err)
			}
		}
	}
	if v1.GroupVersion.String() != "api.cf-worker/v1" {
		t.Errorf("GroupVersion = %s", v1.GroupVersion)
	}
	if gr := v1.Resource("workeraccounts"); gr.Group != "api.cf-worker" || gr.Resource != "workeraccounts" {
		t.Errorf("Resource = %v", gr)
	}
}
