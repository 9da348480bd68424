package workerd

import (
	"fmt"
	"strings"

	apiv1 "github.com/octohq/octo/api/v1"
)

// ServiceName is the workerd service (and socket) name FromVersion gives a
// version: the script name with '_' turned into '-', then the first 8 hex
// digits of the version ID, e.g. "hello-world-83a49508".
func ServiceName(script, versionID string) string {
	id := strings.ReplaceAll(versionID, "-", "")
	if len(id) > 8 {
		id = id[:8]
	}
	name := strings.Trim(strings.ReplaceAll(strings.ToLower(script), "_", "-"), "-")
	if name == "" {
		return "w-" + id
	}
	return name + "-" + id
}

// ClampCompatibilityDate returns the date workerd runs a version with: an
// empty date becomes DefaultCompatibilityDate, one newer than the runtime
// supports becomes MaxCompatibilityDate.
func ClampCompatibilityDate(date string) string {
	switch {
	case date == "":
		return DefaultCompatibilityDate
	case date > MaxCompatibilityDate:
		return MaxCompatibilityDate
	}
	return date
}

// Targets name what a version's bindings reach outside its own code: the
// workerd service of each KV namespace, R2 bucket, D1 database and bound
// script, and the environment variable that holds each secret. FromVersion
// refuses a binding whose func is nil.
type Targets struct {
	// KV is the external service of a KV namespace ID.
	KV func(namespaceID string) string
	// R2 is the external service of an R2 bucket name.
	R2 func(bucket string) string
	// D1 is the external service of a D1 database ID.
	D1 func(databaseID string) string
	// Script is the Worker (service name) a service binding to script
	// reaches.
	Script func(script string) string
	// SecretEnv is the environment variable of a secret binding.
	SecretEnv func(binding string) string
	// Assets is the external service of the version's static assets, for
	// its assets binding (Assets.Binding); nil leaves the binding out.
	Assets func(v *apiv1.VersionAssets) string
	// ObjectHost is the Worker that hosts the script's Durable Object
	// classes when it is not this one: the version's Durable Object
	// bindings reach them there, and it hosts none. Empty: the version
	// hosts the classes of its spec.durableObjects itself.
	ObjectHost string
	// ObjectStorage is the disk service the hosted classes keep their
	// objects in; empty keeps them in memory (Worker.ObjectStorage).
	ObjectStorage string
}

// FromVersion maps a WorkerVersion to a Worker, the way Cloudflare runs an uploaded version:
//
//   - the main module (main_module or body_part) first, then the others in
//     upload order; source maps are left out. A body_part makes a
//     service-worker script.
//   - plain_text → Text; json → JSON; secret_text → FromEnv(t.SecretEnv(name));
//     kv_namespace → KV(t.KV(namespace ID)); r2_bucket → R2(t.R2(bucket));
//     d1 → D1(t.D1(database ID)); service → Service(t.Script(script)) at its
//     entrypoint; wasm_module → Wasm, text_blob → Text read from the module,
//     data_blob → Data; durable_object_namespace → DurableObject (of
//     t.ObjectHost, or of the classes the version hosts).
//   - the compatibility date is clamped (ClampCompatibilityDate).
//
// files maps each module name to its path relative to the config file.
// Name is ServiceName(script, version ID); Address and Tail are left for the
// caller. Binding types octo does not run yet, and bindings whose Targets
// func is nil, are an error.
func FromVersion(v *apiv1.WorkerVersion, files map[string]string, t Targets) (Worker, error) {
	s := &v.Spec
	w := Worker{
		Name:               ServiceName(s.ScriptName, s.VersionID),
		ServiceWorker:      s.BodyPart != "",
		CompatibilityDate:  ClampCompatibilityDate(s.CompatibilityDate),
		CompatibilityFlags: append([]string(nil), s.CompatibilityFlags...),
	}
	main := s.MainModule
	if w.ServiceWorker {
		main = s.BodyPart
	}
	if main == "" {
		return Worker{}, fmt.Errorf("version %s has neither a main module nor a body part", s.VersionID)
	}
	module := func(m apiv1.WorkerModule) (Module, error) {
		p, ok := files[m.Name]
		if !ok {
			return Module{}, fmt.Errorf("version %s: no file for module %q", s.VersionID, m.Name)
		}
		typ := m.Type
		if m.Name == main && w.ServiceWorker {
			typ = apiv1.ModuleServiceWorker
		}
		return Module{Name: m.Name, Type: typ, Path: p}, nil
	}
	found := false
	for _, m := range s.Modules {
		if m.Name == main {
			mm, err := module(m)
			if err != nil {
				return Worker{}, err
			}
			w.Modules = append([]Module{mm}, w.Modules...)
			found = true
			continue
		}
		if m.Type == apiv1.ModuleSourceMap {
			continue
		}
		mm, err := module(m)
		if err != nil {
			return Worker{}, err
		}
		w.Modules = append(w.Modules, mm)
	}
	if !found {
		return Worker{}, fmt.Errorf("version %s: main module %q is not among its modules", s.VersionID, main)
	}
	for _, b := range s.Bindings {
		wb := Binding{Name: b.Name}
		switch b.Type {
		case apiv1.BindingPlainText:
			wb.Kind, wb.Text = Text, b.Text
		case apiv1.BindingJSON:
			if b.JSON == nil || len(b.JSON.Raw) == 0 {
				return Worker{}, fmt.Errorf("version %s: json binding %s has no value", s.VersionID, b.Name)
			}
			wb.Kind, wb.JSON = JSON, string(b.JSON.Raw)
		case apiv1.BindingSecretText:
			if t.SecretEnv == nil {
				return Worker{}, fmt.Errorf("version %s: secret binding %s needs an environment variable", s.VersionID, b.Name)
			}
			wb.Kind, wb.Env = FromEnv, t.SecretEnv(b.Name)
		case apiv1.BindingKV:
			if t.KV == nil {
				return Worker{}, fmt.Errorf("version %s: KV binding %s needs a KV service", s.VersionID, b.Name)
			}
			wb.Kind, wb.Service = KV, t.KV(b.NamespaceID)
		case apiv1.BindingR2:
			if t.R2 == nil {
				return Worker{}, fmt.Errorf("version %s: R2 binding %s needs an R2 service", s.VersionID, b.Name)
			}
			wb.Kind, wb.Service = R2, t.R2(b.BucketName)
		case apiv1.BindingD1:
			if t.D1 == nil {
				return Worker{}, fmt.Errorf("version %s: D1 binding %s needs a D1 service", s.VersionID, b.Name)
			}
			wb.Kind, wb.Service = D1, t.D1(b.DatabaseID)
		case apiv1.BindingService:
			if t.Script == nil {
				return Worker{}, fmt.Errorf("version %s: service binding %s needs the Worker of script %s", s.VersionID, b.Name, b.Service)
			}
			wb.Kind, wb.Service, wb.Entrypoint = Service, t.Script(b.Service), b.Entrypoint
		case apiv1.BindingWasmModule:
			wb.Kind, wb.Module = Wasm, b.Part
		case apiv1.BindingTextBlob:
			wb.Kind, wb.Module = Text, b.Part
		case apiv1.BindingDataBlob:
			wb.Kind, wb.Module = Data, b.Part
		case apiv1.BindingDurableObject:
			wb.Kind, wb.ClassName, wb.Service = DurableObject, b.ClassName, t.ObjectHost
		default:
			return Worker{}, fmt.Errorf("version %s: binding %s has type %q, which octo cannot run yet", s.VersionID, b.Name, b.Type)
		}
		w.Bindings = append(w.Bindings, wb)
	}
	if a := s.Assets; a != nil && a.Binding != "" && t.Assets != nil {
		w.Bindings = append(w.Bindings, Binding{Name: a.Binding, Kind: Fetcher, Service: t.Assets(a)})
	}
	if s.DurableObjects != nil && t.ObjectHost == "" {
		for _, c := range s.DurableObjects.Classes {
			w.DurableObjects = append(w.DurableObjects, ObjectNamespace{ClassName: c.ClassName, UniqueKey: c.NamespaceID, SQL: c.SQLite})
		}
		w.ObjectStorage = t.ObjectStorage
	}
	return w, nil
}
