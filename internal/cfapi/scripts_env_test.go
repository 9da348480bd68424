package cfapi

// Test environment of the scripts API: the echo server over a fake cluster
// (controller-runtime's fake client, with the apiserver's admission of the
// api.cf-worker/v1 kinds and of Secrets replayed on every write) and the real
// embedded S3 store started by TestMain (kv_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/crds"
	"github.com/octohq/octo/internal/store"
)

const (
	scToken     = "scripts-test-token"
	scNamespace = "octo-scripts-test"
	scEmail     = "dev@octo.localhost"
)

// scHook is called before every intercepted client call; a non-nil error is
// returned instead of performing the call. verb is create, update, delete,
// get or list; obj is the object or list. After a list, it is also called
// with verb "listed".
type scHook func(ctx context.Context, verb string, obj runtime.Object) error

// scEnv is one API server with its own account (so S3 keys never clash
// between tests) and its own fake cluster.
type scEnv struct {
	t   testing.TB
	e   *echo.Echo
	srv *Server
	st  *store.Store
	// storeOpts made st; change them and call build for another store.
	storeOpts store.Options
	c         client.Client
	scheme    *runtime.Scheme
	acct      store.Account
	clock     atomic.Int64 // unix nanoseconds; every read advances it by 1s

	noAdmit bool

	mu   sync.Mutex
	hook scHook
}

func newScriptsEnv(t testing.TB) *scEnv { return newScriptsEnvWith(t, true) }

// newScriptsEnvWith makes an env; admit=false skips the admission checks
// (for benchmarks: a real apiserver does them on its side).
func newScriptsEnvWith(t testing.TB, admit bool) *scEnv {
	t.Helper()
	id, err := store.RandomHex(16)
	if err != nil {
		t.Fatal(err)
	}
	env := &scEnv{t: t, acct: store.Account{ID: id, Name: "scripts test", Subdomain: "octo", Namespace: scNamespace}, noAdmit: !admit}
	env.clock.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	env.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(env.scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiv1.AddToScheme(env.scheme); err != nil {
		t.Fatal(err)
	}
	env.c = fake.NewClientBuilder().
		WithScheme(env.scheme).
		WithStatusSubresource(&apiv1.WorkerVersion{}, &apiv1.WorkerRelease{}, &apiv1.WorkerAccount{}, &apiv1.WorkerBundle{}, &apiv1.JobBuilder{}).
		WithInterceptorFuncs(env.interceptors()).
		Build()
	env.storeOpts = store.Options{
		Client: env.c, Blobs: testBlobs, Accounts: store.StaticAccounts{env.acct}, AuthorEmail: scEmail, Now: env.now,
	}
	env.build()
	t.Cleanup(func() { _ = testBlobs.DeletePrefix(context.Background(), "accounts/"+id+"/") })
	return env
}

// scKVNamespace is the KV namespace withKVNamespace gives an env.
const scKVNamespace = "d5d2b0405f5ff994b5805e2a7e9068ca"

// withKVNamespace gives env's account the namespace scKVNamespace (its
// stored record, as the KV store writes it): uploads refuse a KV namespace
// the account does not have.
func (env *scEnv) withKVNamespace() *scEnv {
	rec := `{"id":"` + scKVNamespace + `","title":"fixture","created_on":"2026-01-01T00:00:00Z"}`
	if err := testBlobs.Put(context.Background(), "accounts/"+env.acct.ID+"/kv/"+scKVNamespace+"/namespace.json", []byte(rec), "application/json", nil); err != nil {
		env.t.Fatal(err)
	}
	return env
}

// build makes the store of env.storeOpts and an API server over it.
func (env *scEnv) build() {
	env.st = store.New(env.storeOpts)
	env.srv = New(Options{
		Identity: store.Identity{Token: scToken, AccountID: env.acct.ID, AccountName: "scripts test", Subdomain: "octo", Email: scEmail},
		Store:    env.st,
	})
	env.e = echo.New()
	env.e.HTTPErrorHandler = ErrorHandler
	env.e.Logger.SetOutput(testWriter{env.t})
	env.srv.Register(env.e)
}

// sub is env reporting to t (a subtest). Hooks and the clock stay env's.
func (env *scEnv) sub(t testing.TB) *scEnv {
	return &scEnv{t: t, e: env.e, srv: env.srv, st: env.st, storeOpts: env.storeOpts, c: env.c, scheme: env.scheme, acct: env.acct}
}

// testWriter sends echo's log (internal errors) to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("echo: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// now is a strictly increasing clock, so creation times order versions and
// deployments deterministically. It steps by a second: metav1.Time keeps
// whole seconds only, so the stored times of two writes within one second
// are equal.
func (env *scEnv) now() time.Time {
	return time.Unix(0, env.clock.Add(int64(time.Second)))
}

func (env *scEnv) setHook(h scHook) {
	env.mu.Lock()
	env.hook = h
	env.mu.Unlock()
}

func (env *scEnv) callHook(ctx context.Context, verb string, obj runtime.Object) error {
	env.mu.Lock()
	h := env.hook
	env.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(ctx, verb, obj)
}

// interceptors run the hook, then the admission checks, then the call.
func (env *scEnv) interceptors() interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := env.callHook(ctx, "create", obj); err != nil {
				return err
			}
			if err := env.admit(obj, nil); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := env.callHook(ctx, "update", obj); err != nil {
				return err
			}
			old := obj.DeepCopyObject().(client.Object)
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), old); err != nil {
				return err
			}
			if err := env.admit(obj, old); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if err := env.callHook(ctx, "delete", obj); err != nil {
				return err
			}
			return c.Delete(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := env.callHook(ctx, "get", obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := env.callHook(ctx, "list", list); err != nil {
				return err
			}
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			return env.callHook(ctx, "listed", list)
		},
	}
}

// admit replays what a real apiserver checks on a write that the fake
// client does not: for the octo kinds the CRD schema (pruning of unknown
// fields counts as an error: the field would be lost), list-map keys and CEL
// rules; for every object its name and labels; for Secrets the data keys.
func (env *scEnv) admit(obj, old client.Object) error {
	if env.noAdmit {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, env.scheme)
	if err != nil {
		return err
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(obj.GetName()) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), obj.GetName(), msg))
	}
	errs = append(errs, metav1validation.ValidateLabels(obj.GetLabels(), field.NewPath("metadata", "labels"))...)
	if sec, ok := obj.(*corev1.Secret); ok {
		for k := range sec.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
			}
		}
	}
	if gvk.Group == apiv1.Group {
		schema, err := scSchemaFor(gvk.Kind)
		if err != nil {
			return err
		}
		m, err := scToMap(obj, gvk.GroupVersion().String(), gvk.Kind)
		if err != nil {
			return err
		}
		var oldMap map[string]any
		if old != nil {
			if oldMap, err = scToMap(old, gvk.GroupVersion().String(), gvk.Kind); err != nil {
				return err
			}
		}
		errs = append(errs, schema.admit(m, oldMap)...)
	}
	if len(errs) > 0 {
		env.t.Logf("admission refused %s %s: %v", gvk.Kind, obj.GetName(), errs.ToAggregate())
		return apierrors.NewInvalid(gvk.GroupKind(), obj.GetName(), errs)
	}
	return nil
}

func scToMap(obj runtime.Object, apiVersion, kind string) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := utiljson.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	m["apiVersion"], m["kind"] = apiVersion, kind
	return m, nil
}

// scCRDSchema is one kind's schema in the forms the apiserver admits custom
// resources with (as in api/v1/schema_helpers_test.go).
type scCRDSchema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var (
	scSchemasOnce sync.Once
	scSchemas     map[string]*scCRDSchema
	scSchemasErr  error
)

func scSchemaFor(kind string) (*scCRDSchema, error) {
	scSchemasOnce.Do(func() { scSchemas, scSchemasErr = scLoadSchemas() })
	if scSchemasErr != nil {
		return nil, scSchemasErr
	}
	s, ok := scSchemas[kind]
	if !ok {
		return nil, fmt.Errorf("no CRD for kind %s", kind)
	}
	return s, nil
}

func scLoadSchemas() (map[string]*scCRDSchema, error) {
	all, err := crds.CRDs()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	apiextensionsinstall.Install(scheme)
	out := map[string]*scCRDSchema{}
	for _, crd := range all {
		scheme.Default(crd)
		var internal apiextensions.CustomResourceDefinition
		if err := scheme.Convert(crd, &internal, nil); err != nil {
			return nil, fmt.Errorf("convert %s CRD: %w", crd.Name, err)
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
		if props == nil {
			return nil, fmt.Errorf("%s CRD has no v1 schema", crd.Name)
		}
		structural, err := structuralschema.NewStructural(props)
		if err != nil {
			return nil, err
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(props)
		if err != nil {
			return nil, err
		}
		out[crd.Spec.Names.Kind] = &scCRDSchema{structural: structural, validator: validator,
			cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}
	}
	return out, nil
}

func (s *scCRDSchema) admit(obj, old map[string]any) field.ErrorList {
	var errs field.ErrorList
	pruned := pruning.PruneWithOptions(obj, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range pruned {
		errs = append(errs, field.Invalid(field.NewPath(p), nil, "unknown field: the apiserver would drop it"))
	}
	structuraldefaulting.Default(obj, s.structural)
	if old == nil {
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, s.validator)...)
	} else {
		pruning.PruneWithOptions(old, s.structural, true, structuralschema.UnknownFieldPathOptions{})
		structuraldefaulting.Default(old, s.structural)
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, obj, old, s.validator)...)
	}
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	var oldObj any
	if old != nil {
		oldObj = old
	}
	celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, oldObj, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// ---- requests ----

// scReply is a decoded envelope.
type scReply struct {
	Status   int
	Success  bool            `json:"success"`
	Errors   []Message       `json:"errors"`
	Messages []Message       `json:"messages"`
	Result   json.RawMessage `json:"result"`
	Body     string          `json:"-"`
}

func (r scReply) code() int {
	if len(r.Errors) == 0 {
		return 0
	}
	return r.Errors[0].Code
}

func (r scReply) msg() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Message
}

// into decodes the result.
func (r scReply) into(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Result, v); err != nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
}

// scReq is one request; path is relative to /client/v4/accounts/<acct>/workers
// unless abs is set.
type scReq struct {
	method, path string
	body         []byte
	contentType  string
	abs          bool
	token        *string // nil = the right token
	ctx          context.Context
}

func (env *scEnv) send(r scReq) scReply {
	env.t.Helper()
	return env.sendWithAuth(r, "")
}

// sendWithAuth sends r; a non-empty auth is the raw Authorization header.
func (env *scEnv) sendWithAuth(r scReq, auth string) scReply {
	env.t.Helper()
	p := r.path
	if !r.abs {
		p = BasePath + "/accounts/" + env.acct.ID + "/workers" + p
	}
	req := httptest.NewRequest(r.method, p, bytes.NewReader(r.body))
	if r.ctx != nil {
		req = req.WithContext(r.ctx)
	}
	token := scToken
	if r.token != nil {
		token = *r.token
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("User-Agent", "wrangler/4.86.0")
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	var out scReply
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		env.t.Fatalf("%s %s: answer %d is not an envelope: %v: %q", r.method, p, rec.Code, err, rec.Body.String())
	}
	out.Status, out.Body = rec.Code, rec.Body.String()
	return out
}

// call sends a JSON body (marshalled unless string/[]byte; nil = no body).
func (env *scEnv) call(method, path string, body any) scReply {
	env.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			env.t.Fatal(err)
		}
	}
	ct := ""
	if b != nil {
		ct = "application/json"
	}
	return env.send(scReq{method: method, path: path, body: b, contentType: ct})
}

// must fails the test unless r is a 200 success.
func (env *scEnv) must(r scReply) scReply {
	env.t.Helper()
	if r.Status != http.StatusOK || !r.Success {
		env.t.Fatalf("answer = %d %s", r.Status, r.Body)
	}
	return r
}

// fails checks an error answer: status, success=false, errors[0].code and a
// message substring.
func (env *scEnv) fails(r scReply, status, code int, msgPart string) {
	env.t.Helper()
	if r.Status != status || r.Success || r.code() != code {
		env.t.Errorf("answer = %d %s, want %d with code %d", r.Status, r.Body, status, code)
		return
	}
	if !strings.Contains(r.msg(), msgPart) {
		env.t.Errorf("message %q does not contain %q", r.msg(), msgPart)
	}
}

// ---- wrangler's multipart bodies ----

// scPart is one part of an upload. A part without content type is written
// like wrangler's metadata part: no filename, no Content-Type.
type scPart struct {
	name string
	ct   string
	data string
}

func esm(name, code string) scPart {
	return scPart{name: name, ct: "application/javascript+module", data: code}
}

const helloESM = "// src/index.js\nvar index_default = { fetch() {\n  return new Response(\"hi\");\n} };\nexport {\n  index_default as default\n};\n//# sourceMappingURL=index.js.map\n"

// undiciBoundary is a boundary as undici makes them.
func undiciBoundary() string {
	return fmt.Sprintf("----formdata-undici-0%011d", rand.Int64N(1e11))
}

// wranglerForm builds the multipart body wrangler sends: the metadata part
// first (meta marshalled unless a string), then the parts in order.
func wranglerForm(meta any, parts ...scPart) ([]byte, string) {
	var m string
	switch v := meta.(type) {
	case string:
		m = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		m = string(b)
	}
	return formWith(undiciBoundary(), append([]scPart{{name: "metadata", data: m}}, parts...)...)
}

// formWith writes parts byte for byte as undici does.
func formWith(boundary string, parts ...scPart) ([]byte, string) {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		if p.ct == "" {
			fmt.Fprintf(&b, "Content-Disposition: form-data; name=%q\r\n", p.name)
		} else {
			fmt.Fprintf(&b, "Content-Disposition: form-data; name=%q; filename=%q\r\n", p.name, p.name)
			fmt.Fprintf(&b, "Content-Type: %s\r\n", p.ct)
		}
		b.WriteString("\r\n" + p.data + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), "multipart/form-data; boundary=" + boundary
}

// meta is an upload's metadata; a fresh map per call.
func esmMeta(bindings ...map[string]any) map[string]any {
	if bindings == nil {
		bindings = []map[string]any{}
	}
	return map[string]any{"main_module": "index.js", "bindings": bindings, "compatibility_date": "2025-01-01", "compatibility_flags": []string{}}
}

// upload sends a multipart upload (PUT script or POST versions).
func (env *scEnv) upload(method, path string, meta any, parts ...scPart) scReply {
	env.t.Helper()
	body, ct := wranglerForm(meta, parts...)
	return env.send(scReq{method: method, path: path, body: body, contentType: ct})
}

// deployHello PUTs a hello-world ES module worker with bindings.
func (env *scEnv) deployHello(script string, bindings ...map[string]any) scReply {
	env.t.Helper()
	return env.must(env.upload(http.MethodPut, "/scripts/"+script+"?excludeScript=true&bindings_inherit=strict", esmMeta(bindings...), esm("index.js", helloESM)))
}

// ---- stored state ----

// scSnapshot is everything the API stored for the account.
type scSnapshot struct {
	Keys    []string
	Objects []string // kind/name@resourceVersion
}

func (env *scEnv) snapshot() scSnapshot {
	env.t.Helper()
	ctx := context.Background()
	s := scSnapshot{Keys: env.keys("")}
	var vl apiv1.WorkerVersionList
	var rl apiv1.WorkerReleaseList
	var sl corev1.SecretList
	for _, l := range []client.ObjectList{&vl, &rl, &sl} {
		if err := env.c.List(ctx, l); err != nil {
			env.t.Fatal(err)
		}
	}
	for _, o := range vl.Items {
		s.Objects = append(s.Objects, "WorkerVersion/"+o.Name+"@"+o.ResourceVersion)
	}
	for _, o := range rl.Items {
		s.Objects = append(s.Objects, "WorkerRelease/"+o.Name+"@"+o.ResourceVersion)
	}
	for _, o := range sl.Items {
		s.Objects = append(s.Objects, "Secret/"+o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(s.Objects)
	return s
}

// unchanged fails unless nothing was written since before.
func (env *scEnv) unchanged(before scSnapshot) {
	env.t.Helper()
	after := env.snapshot()
	if added, removed := diffStrings(before.Keys, after.Keys); len(added)+len(removed) > 0 {
		env.t.Errorf("S3 keys changed: added %q, removed %q", added, removed)
	}
	if added, removed := diffStrings(before.Objects, after.Objects); len(added)+len(removed) > 0 {
		env.t.Errorf("objects changed: added %q, removed %q", added, removed)
	}
}

// diffStrings returns what b has and a lacks, and what a has and b lacks.
func diffStrings(a, b []string) (added, removed []string) {
	for _, s := range b {
		if !slices.Contains(a, s) {
			added = append(added, s)
		}
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			removed = append(removed, s)
		}
	}
	return added, removed
}

// keys lists the S3 keys under accounts/<acct>/<sub>.
func (env *scEnv) keys(sub string) []string {
	env.t.Helper()
	keys, err := testBlobs.List(context.Background(), "accounts/"+env.acct.ID+"/"+sub, "", 0)
	if err != nil {
		env.t.Fatal(err)
	}
	return keys
}

// versions returns the script's WorkerVersions by number.
func (env *scEnv) versions(script string) []apiv1.WorkerVersion {
	env.t.Helper()
	var l apiv1.WorkerVersionList
	if err := env.c.List(context.Background(), &l); err != nil {
		env.t.Fatal(err)
	}
	var out []apiv1.WorkerVersion
	for _, v := range l.Items {
		if v.Spec.ScriptName == script {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Number < out[j].Spec.Number })
	return out
}

// latest is the script's newest WorkerVersion.
func (env *scEnv) latest(script string) apiv1.WorkerVersion {
	env.t.Helper()
	vs := env.versions(script)
	if len(vs) == 0 {
		env.t.Fatalf("script %s has no versions", script)
	}
	return vs[len(vs)-1]
}

// release returns the script's WorkerRelease or nil.
func (env *scEnv) release(script string) *apiv1.WorkerRelease {
	env.t.Helper()
	var rel apiv1.WorkerRelease
	err := env.c.Get(context.Background(), client.ObjectKey{Namespace: scNamespace, Name: store.ObjectName(script)}, &rel)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		env.t.Fatal(err)
	}
	return &rel
}

// secret returns the script's Secret or nil.
func (env *scEnv) secret(script string) *corev1.Secret {
	env.t.Helper()
	var sec corev1.Secret
	err := env.c.Get(context.Background(), client.ObjectKey{Namespace: scNamespace, Name: store.SecretName(script)}, &sec)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		env.t.Fatal(err)
	}
	return &sec
}

// secretOf returns the value v's secret binding name reads from the
// script's Secret, and whether there is one.
func (env *scEnv) secretOf(v apiv1.WorkerVersion, name string) (string, bool) {
	env.t.Helper()
	b := bindingByName(v, name)
	sec := env.secret(v.Spec.ScriptName)
	if b == nil || b.Type != apiv1.BindingSecretText || b.SecretRef == nil || sec == nil || b.SecretRef.Name != sec.Name {
		return "", false
	}
	value, ok := sec.Data[b.SecretRef.Key]
	return string(value), ok
}

// deployed is the version serving 100 % of the script's traffic.
func (env *scEnv) deployed(script string) apiv1.WorkerVersion {
	env.t.Helper()
	rel := env.release(script)
	if rel == nil || rel.ActiveDeployment() == nil || len(rel.ActiveDeployment().Versions) != 1 {
		env.t.Fatalf("script %s has no version deployed at 100 %%", script)
	}
	id := rel.ActiveDeployment().Versions[0].VersionID
	for _, v := range env.versions(script) {
		if v.Spec.VersionID == id {
			return v
		}
	}
	env.t.Fatalf("deployed version %s of %s not found", id, script)
	return apiv1.WorkerVersion{}
}

// blob reads an S3 object.
func (env *scEnv) blob(key string) []byte {
	env.t.Helper()
	b, _, err := testBlobs.Get(context.Background(), key)
	if err != nil {
		env.t.Fatal(err)
	}
	return b
}

// bindingByName finds a version's binding.
func bindingByName(v apiv1.WorkerVersion, name string) *apiv1.WorkerBinding {
	for i := range v.Spec.Bindings {
		if v.Spec.Bindings[i].Name == name {
			return &v.Spec.Bindings[i]
		}
	}
	return nil
}

func bindingNames(v apiv1.WorkerVersion) []string {
	var out []string
	for _, b := range v.Spec.Bindings {
		out = append(out, b.Name)
	}
	sort.Strings(out)
	return out
}
