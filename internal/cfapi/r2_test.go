package cfapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
)

// r2Env is an API server with an account of its own.
type r2Env struct {
	t       *testing.T
	e       *echo.Echo
	account string
}

func newR2Env(t *testing.T) *r2Env {
	t.Helper()
	acct := storetest.Account(t).ID
	s := New(Options{
		Identity: store.Identity{Token: kvTestToken, AccountID: acct},
		Store:    store.New(store.Options{Blobs: testBlobs, Accounts: store.StaticAccounts{{ID: acct, Name: "r2 test"}}}),
	})
	env := &r2Env{t: t, e: echo.New(), account: acct}
	env.e.HTTPErrorHandler = ErrorHandler
	s.Register(env.e)
	return env
}

// do sends a request to path below the account with the API token.
func (env *r2Env) do(method, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	env.t.Helper()
	target := BasePath + "/accounts/" + env.account + path
	if strings.HasPrefix(path, "/graphql") {
		target = BasePath + path
	}
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+kvTestToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	env.e.ServeHTTP(rec, req)
	return rec
}

func (env *r2Env) call(method, path, body string) kvReply {
	env.t.Helper()
	return decodeReply(env.t, env.do(method, path, []byte(body), map[string]string{"Content-Type": "application/json"}))
}

func TestR2API(t *testing.T) {
	env := newR2Env(t)
	r := env.call(http.MethodPost, "/r2/buckets", `{"name":"bk1","locationHint":"weur"}`)
	var b r2BucketJSON
	if err := json.Unmarshal(r.Result, &b); err != nil || !r.Success || b.Name != "bk1" || b.Location != "WEUR" || b.StorageClass != "Standard" {
		t.Fatalf("create = %+v %s", r, r.Result)
	}
	if _, err := time.Parse(time.RFC3339Nano, b.CreationDate); err != nil {
		t.Errorf("creation_date %q: %v", b.CreationDate, err)
	}
	if r := env.call(http.MethodPost, "/r2/buckets", `{"name":"bk1"}`); r.Status != http.StatusConflict || r.code() != 10004 ||
		r.Errors[0].Message != "The bucket you tried to create already exists, and you own it." {
		t.Errorf("create twice = %+v", r)
	}
	if r := env.call(http.MethodPost, "/r2/buckets", `{"name":"Bad_Name"}`); r.Status != http.StatusBadRequest || r.code() != 10005 {
		t.Errorf("bad name = %+v", r)
	}
	if r := env.call(http.MethodPost, "/r2/buckets", `{"name":"bk2"}`); !r.Success {
		t.Fatalf("create b2 = %+v", r)
	}
	r = env.call(http.MethodGet, "/r2/buckets", "")
	var list struct{ Buckets []r2BucketJSON }
	if err := json.Unmarshal(r.Result, &list); err != nil || len(list.Buckets) != 2 || list.Buckets[0].Name != "bk1" || list.Buckets[1].Name != "bk2" {
		t.Errorf("list = %s", r.Result)
	}
	// Another account sees none of them.
	if r := newR2Env(t).call(http.MethodGet, "/r2/buckets", ""); string(r.Result) != `{"buckets":[]}` {
		t.Errorf("other account's list = %s", r.Result)
	}
	if r := env.call(http.MethodGet, "/r2/buckets/bk1", ""); !r.Success || !strings.Contains(string(r.Result), `"name":"bk1"`) {
		t.Errorf("get = %+v", r)
	}
	if r := env.call(http.MethodGet, "/r2/buckets/nope", ""); r.Status != http.StatusNotFound || r.code() != 10006 {
		t.Errorf("get missing = %+v", r)
	}

	// Objects: keys keep their slashes and are decoded once.
	put := env.do(http.MethodPut, "/r2/buckets/bk1/objects/dir/a%20b.txt", []byte("hello"),
		map[string]string{"Content-Type": "text/plain", "Cache-Control": "no-cache", "Expires": "Wed, 02 Jan 2030 03:04:05 GMT"})
	if r := decodeReply(t, put); !r.Success || !strings.Contains(string(r.Result), `"key":"dir/a b.txt"`) {
		t.Fatalf("put = %d %s", put.Code, put.Body)
	}
	get := env.do(http.MethodGet, "/r2/buckets/bk1/objects/dir/a%20b.txt", nil, nil)
	if get.Code != http.StatusOK || get.Body.String() != "hello" || get.Header().Get("Content-Type") != "text/plain" ||
		get.Header().Get("Cache-Control") != "no-cache" || get.Header().Get("Expires") != "Wed, 02 Jan 2030 03:04:05 GMT" {
		t.Errorf("get object = %d %q %v", get.Code, get.Body, get.Header())
	}
	if r := decodeReply(t, env.do(http.MethodGet, "/r2/buckets/bk1/objects/missing", nil, nil)); r.Status != http.StatusNotFound || r.code() != 10007 {
		t.Errorf("get missing object = %+v", r)
	}
	if r := decodeReply(t, env.do(http.MethodPut, "/r2/buckets/nope/objects/k", []byte("x"), nil)); r.Status != http.StatusNotFound || r.code() != 10006 {
		t.Errorf("put into missing bucket = %+v", r)
	}
	gql := `{"query":"query getR2StorageMetrics { viewer { accounts { r2StorageAdaptiveGroups { max { objectCount } } } } }",` +
		`"variables":{"accountTag":"` + env.account + `","filter":{"bucketName":"bk1"}}}`
	g := env.do(http.MethodPost, "/graphql", []byte(gql), map[string]string{"Content-Type": "application/json"})
	if g.Code != http.StatusOK || !strings.Contains(g.Body.String(), `"max":{"metadataSize":0,"objectCount":1,"payloadSize":5}`) {
		t.Errorf("graphql = %d %s", g.Code, g.Body)
	}
	if r := env.call(http.MethodDelete, "/r2/buckets/bk1", ""); r.Status != http.StatusConflict || r.code() != 10008 ||
		r.Errors[0].Message != "The bucket you tried to delete is not empty." {
		t.Errorf("delete non-empty = %+v", r)
	}
	if r := decodeReply(t, env.do(http.MethodDelete, "/r2/buckets/bk1/objects/dir/a%20b.txt", nil, nil)); !r.Success {
		t.Errorf("delete object = %+v", r)
	}
	if r := env.call(http.MethodDelete, "/r2/buckets/bk1", ""); !r.Success {
		t.Errorf("delete = %+v", r)
	}
	if r := env.call(http.MethodDelete, "/r2/buckets/bk1", ""); r.Status != http.StatusNotFound || r.code() != 10006 ||
		r.Errors[0].Message != "The specified bucket does not exist." {
		t.Errorf("delete twice = %+v", r)
	}
}

// wranglerJS is wrangler 4.86's entry point: the one e2e installs, or
// OCTO_TEST_WRANGLER_JS.
func wranglerJS(t *testing.T) string {
	p := os.Getenv("OCTO_TEST_WRANGLER_JS")
	if p == "" {
		p, _ = filepath.Abs("../../e2e/node_modules/wrangler/bin/wrangler.js")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("wrangler is not installed (npm ci --prefix e2e, or set OCTO_TEST_WRANGLER_JS)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	return p
}

// TestR2Wrangler runs the real wrangler's r2 commands against the API.
func TestR2Wrangler(t *testing.T) {
	js := wranglerJS(t)
	env := newR2Env(t)
	srv := httptest.NewServer(env.e)
	defer srv.Close()
	home, dir := t.TempDir(), t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", append([]string{js}, args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
			"TMPDIR=" + t.TempDir(), "CLOUDFLARE_API_BASE_URL=" + srv.URL + BasePath, "CLOUDFLARE_API_TOKEN=" + kvTestToken,
			"CLOUDFLARE_ACCOUNT_ID=" + env.account, "WRANGLER_SEND_METRICS=false", "WRANGLER_SEND_ERROR_REPORTS=false",
			"npm_registry=http://127.0.0.1:9/", "NO_COLOR=1", "FORCE_COLOR=0", "CI=true"}
		cmd.Stdin = strings.NewReader("")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("wrangler %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	if out := run("r2", "bucket", "create", "wr-bucket"); !strings.Contains(out, "Created bucket 'wr-bucket'") {
		t.Errorf("create:\n%s", out)
	}
	if out := run("r2", "bucket", "list"); !strings.Contains(out, "name:           wr-bucket") || !strings.Contains(out, "creation_date:") {
		t.Errorf("list:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from wrangler"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run("r2", "object", "put", "wr-bucket/some/key.txt", "--file", "in.txt", "--content-type", "text/plain", "--remote"); !strings.Contains(out, "Upload complete") {
		t.Errorf("object put:\n%s", out)
	}
	if out := run("r2", "object", "get", "wr-bucket/some/key.txt", "--pipe", "--remote"); !strings.Contains(out, "from wrangler") {
		t.Errorf("object get:\n%s", out)
	}
	if out := run("r2", "bucket", "info", "wr-bucket", "--json"); !strings.Contains(out, `"object_count": "1"`) || !strings.Contains(out, `"bucket_size": "13 B"`) {
		t.Errorf("info:\n%s", out)
	}
	if out := run("r2", "object", "delete", "wr-bucket/some/key.txt", "--remote"); !strings.Contains(out, "Delete complete") {
		t.Errorf("object delete:\n%s", out)
	}
	if out := run("r2", "bucket", "delete", "wr-bucket"); !strings.Contains(out, "Deleted bucket wr-bucket") {
		t.Errorf("delete:\n%s", out)
	}
	if out := run("r2", "bucket", "list"); strings.Contains(out, "wr-bucket") {
		t.Errorf("list after delete:\n%s", out)
	}
}
