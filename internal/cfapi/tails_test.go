package cfapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

func TestTailsAPI(t *testing.T) {
	const acct = "0123456789abcdef0123456789abcdef"
	scheme := runtime.NewScheme()
	if err := apiv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rel := &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: store.DefaultNamespace},
		Spec:       apiv1.WorkerReleaseSpec{AccountID: acct, ScriptName: "hello"},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(rel).Build()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Date(2026, 11, 26, 5, 48, 33, 984_000_000, time.UTC)
	hub := tail.New(ctx, tail.Options{Now: func() time.Time { return now }})
	st := store.New(store.Options{
		Client: c, Accounts: store.StaticAccounts{{ID: acct, Name: "octo", Subdomain: "octo", Namespace: store.DefaultNamespace}},
	})
	s := New(Options{Identity: store.Identity{Token: kvTestToken, AccountID: acct}, Store: st, Tails: hub, EdgeURL: "http://127.0.0.1:8799"})
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler
	s.Register(e)
	env := &kvEnv{t: t, e: e, account: acct}
	call := func(method, path, body, contentType string) kvReply {
		t.Helper()
		req := httptest.NewRequest(method, BasePath+"/accounts/"+acct+"/workers/scripts/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+kvTestToken)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return decodeReply(t, rec)
	}

	// wrangler sends the filters as text/plain.
	r := call(http.MethodPost, "hello/tails", `{"filters":[{"outcome":["ok"]}]}`, "text/plain;charset=UTF-8")
	if r.Status != http.StatusOK || !r.Success {
		t.Fatalf("create = %d %+v", r.Status, r.Errors)
	}
	var created tailJSON
	unmarshal(t, r.Result, &created)
	if len(created.ID) != 32 || created.URL != "ws://127.0.0.1:8799/tail/"+created.ID || created.ExpiresAt != "2026-11-26T06:48:33.984Z" {
		t.Fatalf("created %+v", created)
	}
	if _, ok := hub.Get(created.ID); !ok {
		t.Fatal("the hub has no such session")
	}
	// No content type and an empty body work too.
	if r := call(http.MethodPost, "hello/tails", "", ""); !r.Success {
		t.Fatalf("create without body = %d %+v", r.Status, r.Errors)
	}
	var list []tailJSON
	unmarshal(t, call(http.MethodGet, "hello/tails", "", "").Result, &list)
	// Both sessions share the fake clock's expiry, so their order is not defined.
	if len(list) != 2 || (list[0].ID != created.ID && list[1].ID != created.ID) {
		t.Fatalf("list %+v", list)
	}
	r = call(http.MethodDelete, "hello/tails/"+created.ID, "", "")
	if !r.Success || string(r.Result) != "null" {
		t.Fatalf("delete = %d %+v %s", r.Status, r.Errors, r.Result)
	}
	if _, ok := hub.Get(created.ID); ok {
		t.Fatal("deleted session still there")
	}
	// Deleting again (wrangler after the server closed) still succeeds.
	if r := call(http.MethodDelete, "hello/tails/"+created.ID, "", ""); !r.Success {
		t.Fatalf("second delete = %d %+v", r.Status, r.Errors)
	}
	// Unknown script: 404 with 10007.
	env.fail(call(http.MethodPost, "nope/tails", `{"filters":[]}`, "text/plain;charset=UTF-8"), http.StatusNotFound, store.CodeNotFound)
}
