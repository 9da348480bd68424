package workerd

import (
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	apiv1 "github.com/octohq/octo/api/v1"
)

const testVersionID = "83a49508-9a56-4d11-9860-a13aae5a4d61"

func testVersion(mut func(s *apiv1.WorkerVersionSpec)) *apiv1.WorkerVersion {
	v := &apiv1.WorkerVersion{Spec: apiv1.WorkerVersionSpec{
		ScriptName: "hello_world", VersionID: testVersionID, MainModule: "index.js",
		Modules:           []apiv1.WorkerModule{{Name: "index.js", Type: apiv1.ModuleESModule}},
		CompatibilityDate: "2025-01-01",
	}}
	if mut != nil {
		mut(&v.Spec)
	}
	return v
}

func testFiles(v *apiv1.WorkerVersion) map[string]string {
	files := map[string]string{}
	for i, m := range v.Spec.Modules {
		files[m.Name] = "m/" + string(rune('a'+i))
	}
	return files
}

func kvSvc(id string) string       { return "kv-" + id[:4] }
func secretEnv(name string) string { return "OCTO_SECRET_" + name }

func TestFromVersion(t *testing.T) {
	for name, tc := range map[string]struct {
		v    *apiv1.WorkerVersion
		want Worker
	}{
		"hello": {testVersion(nil), Worker{
			Name:              "hello-world-83a49508",
			Modules:           []Module{{Name: "index.js", Type: apiv1.ModuleESModule, Path: "m/a"}},
			CompatibilityDate: "2025-01-01",
		}},
		"main module first, source maps dropped, flags kept": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.MainModule = "src/main.js"
			s.CompatibilityFlags = []string{"nodejs_compat"}
			s.Modules = []apiv1.WorkerModule{
				{Name: "lib.js", Type: apiv1.ModuleESModule},
				{Name: "src/main.js", Type: apiv1.ModuleESModule},
				{Name: "src/main.js.map", Type: apiv1.ModuleSourceMap},
				{Name: "./banner.txt", Type: apiv1.ModuleText},
			}
		}), Worker{
			Name: "hello-world-83a49508",
			Modules: []Module{
				{Name: "src/main.js", Type: apiv1.ModuleESModule, Path: "m/b"},
				{Name: "lib.js", Type: apiv1.ModuleESModule, Path: "m/a"},
				{Name: "./banner.txt", Type: apiv1.ModuleText, Path: "m/d"},
			},
			CompatibilityDate:  "2025-01-01",
			CompatibilityFlags: []string{"nodejs_compat"},
		}},
		"service worker with blobs": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.MainModule, s.BodyPart = "", "worker.js"
			s.Modules = []apiv1.WorkerModule{
				{Name: "worker.js", Type: apiv1.ModuleCommonJS},
				{Name: "t.txt", Type: apiv1.ModuleText},
				{Name: "d.bin", Type: apiv1.ModuleData},
				{Name: "m.wasm", Type: apiv1.ModuleWasm},
			}
			s.Bindings = []apiv1.WorkerBinding{
				{Name: "TXT", Type: apiv1.BindingTextBlob, Part: "t.txt"},
				{Name: "DAT", Type: apiv1.BindingDataBlob, Part: "d.bin"},
				{Name: "WASM", Type: apiv1.BindingWasmModule, Part: "m.wasm"},
			}
		}), Worker{
			Name: "hello-world-83a49508",
			Modules: []Module{
				{Name: "worker.js", Type: apiv1.ModuleServiceWorker, Path: "m/a"},
				{Name: "t.txt", Type: apiv1.ModuleText, Path: "m/b"},
				{Name: "d.bin", Type: apiv1.ModuleData, Path: "m/c"},
				{Name: "m.wasm", Type: apiv1.ModuleWasm, Path: "m/d"},
			},
			ServiceWorker:     true,
			CompatibilityDate: "2025-01-01",
			Bindings: []Binding{
				{Name: "TXT", Kind: Text, Module: "t.txt"},
				{Name: "DAT", Kind: Data, Module: "d.bin"},
				{Name: "WASM", Kind: Wasm, Module: "m.wasm"},
			},
		}},
		"vars, secrets, kv": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.Bindings = []apiv1.WorkerBinding{
				{Name: "GREETING", Type: apiv1.BindingPlainText, Text: "hello"},
				{Name: "EMPTY", Type: apiv1.BindingPlainText},
				{Name: "CONF", Type: apiv1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"a":1,"b":[true,null]}`)}},
				{Name: "TOKEN", Type: apiv1.BindingSecretText, SecretRef: &apiv1.SecretKeyRef{Name: "s", Key: "TOKEN"}},
				{Name: "MYKV", Type: apiv1.BindingKV, NamespaceID: "d5d2b0405f5ff994b5805e2a7e9068ca"},
			}
		}), Worker{
			Name:              "hello-world-83a49508",
			Modules:           []Module{{Name: "index.js", Type: apiv1.ModuleESModule, Path: "m/a"}},
			CompatibilityDate: "2025-01-01",
			Bindings: []Binding{
				{Name: "GREETING", Kind: Text, Text: "hello"},
				{Name: "EMPTY", Kind: Text},
				{Name: "CONF", Kind: JSON, JSON: `{"a":1,"b":[true,null]}`},
				{Name: "TOKEN", Kind: FromEnv, Env: "OCTO_SECRET_TOKEN"},
				{Name: "MYKV", Kind: KV, Service: "kv-d5d2"},
			},
		}},
		"date newer than the runtime is clamped": {testVersion(func(s *apiv1.WorkerVersionSpec) { s.CompatibilityDate = "2099-01-01" }), Worker{
			Name:              "hello-world-83a49508",
			Modules:           []Module{{Name: "index.js", Type: apiv1.ModuleESModule, Path: "m/a"}},
			CompatibilityDate: MaxCompatibilityDate,
		}},
		"draft worker without a date": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.ScriptName, s.MainModule, s.CompatibilityDate = "fresh-worker", "fresh-worker", ""
			s.Modules = []apiv1.WorkerModule{{Name: "fresh-worker", Type: apiv1.ModuleESModule}}
		}), Worker{
			Name:              "fresh-worker-83a49508",
			Modules:           []Module{{Name: "fresh-worker", Type: apiv1.ModuleESModule, Path: "m/a"}},
			CompatibilityDate: DefaultCompatibilityDate,
		}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := FromVersion(tc.v, testFiles(tc.v), Targets{KV: kvSvc, SecretEnv: secretEnv})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("FromVersion:\n got %+v\nwant %+v", got, tc.want)
			}
			// Every mapped version renders.
			cfg := Config{Workers: []Worker{got}, External: []ExternalService{{Name: "kv-d5d2", Address: "127.0.0.1:1"}}}
			if _, err := cfg.Render(); err != nil {
				t.Fatalf("Render: %v", err)
			}
		})
	}
}

func TestFromVersionErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		v     *apiv1.WorkerVersion
		files map[string]string
		want  string
	}{
		"missing file": {testVersion(nil), map[string]string{}, "no file for module"},
		"main not uploaded": {testVersion(func(s *apiv1.WorkerVersionSpec) { s.MainModule = "other.js" }),
			map[string]string{"index.js": "a"}, "not among its modules"},
		"no main": {testVersion(func(s *apiv1.WorkerVersionSpec) { s.MainModule = "" }), nil, "neither"},
		"unsupported binding": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.Bindings = []apiv1.WorkerBinding{{Name: "B", Type: "queue"}}
		}), nil, "cannot run yet"},
		"json without value": {testVersion(func(s *apiv1.WorkerVersionSpec) {
			s.Bindings = []apiv1.WorkerBinding{{Name: "B", Type: apiv1.BindingJSON}}
		}), nil, "no value"},
	} {
		t.Run(name, func(t *testing.T) {
			files := tc.files
			if files == nil {
				files = testFiles(tc.v)
			}
			_, err := FromVersion(tc.v, files, Targets{KV: kvSvc, SecretEnv: secretEnv})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestServiceNameAndClamp(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"hello", testVersionID}:      "hello-83a49508",
		{"my_worker_", testVersionID}: "my-worker-83a49508",
		{"_", testVersionID}:          "w-83a49508",
	} {
		if got := ServiceName(in[0], in[1]); got != want || !serviceNameRE.MatchString(got) {
			t.Errorf("ServiceName(%q) = %q, want %q", in[0], got, want)
		}
	}
	for in, want := range map[string]string{
		"": DefaultCompatibilityDate, "2025-01-01": "2025-01-01",
		MaxCompatibilityDate: MaxCompatibilityDate, "2026-05-04": MaxCompatibilityDate, "2099-01-01": MaxCompatibilityDate,
	} {
		if got := ClampCompatibilityDate(in); got != want {
			t.Errorf("ClampCompatibilityDate(%q) = %q, want %q", in, got, want)
		}
	}
}
