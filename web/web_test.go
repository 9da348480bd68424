package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const host = "127.0.0.1:8787"

// do sends a request as the page would: loopback Host, the session cookie
// and, for changes, same Origin and the dashboard token. hdr overrides
// headers ("" removes).
func (w *world) do(t *testing.T, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = host
	r.Header.Set("Cookie", SessionCookie+"="+w.cookie)
	if method != http.MethodGet {
		r.Header.Set("Origin", "http://"+host)
		r.Header.Set(TokenHeader, testDashTok)
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	w.e.ServeHTTP(rec, r)
	return rec
}

// getJSON GETs path, wants 200 and decodes the answer into out.
func (w *world) getJSON(t *testing.T, path string, out any) string {
	t.Helper()
	rec := w.do(t, http.MethodGet, path, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
	}
	return rec.Body.String()
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, contains string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, contains) {
		t.Fatalf("error body %s, want JSON {error} containing %q", rec.Body, contains)
	}
}

func TestOverview(t *testing.T) {
	w := newWorld(t, testPort)
	var o struct {
		State     string             `json:"state"`
		Version   string             `json:"version"`
		StartedAt time.Time          `json:"startedAt"`
		Healthy   bool               `json:"healthy"`
		Parts     []Part             `json:"parts"`
		Counts    counts             `json:"counts"`
		EnvVars   []string           `json:"envVars"`
		EnvCmd    string             `json:"envCommand"`
		APIURL    string             `json:"apiURL"`
		Dash      string             `json:"dashboardURL"`
		Subdomain string             `json:"subdomain"`
		Account   string             `json:"account"`
		Metrics   *workerMetricsJSON `json:"metrics"`
		Usage     *usageJSON         `json:"usage"`
	}
	w.getJSON(t, "/dashboard/api/overview", &o)
	if o.Metrics == nil || o.Metrics.Total.Requests != 10 || o.Metrics.Total.Errors != 2 || len(o.Metrics.Points) != 60 {
		t.Errorf("the platform's requests = %+v, want every Worker's 10 (2 errors) by minute", o.Metrics)
	}
	if o.Usage == nil || o.Usage.CPUSeconds != 10 || len(o.Usage.Points) != 60 || o.Usage.Points[58].MemoryBytes != 160<<20 {
		t.Errorf("the platform's usage = %+v, want every bundle's 10 s of CPU and 160 MiB", o.Usage)
	}
	if !o.Healthy || o.State != "ready" || o.Version != "v0.test" || !o.StartedAt.Equal(t0) {
		t.Errorf("overview = %+v, want healthy, ready, v0.test", o)
	}
	if len(o.Parts) != 15 || o.Parts[12].Name != "gateway" || o.Parts[12].Endpoint != "http://*.octo.workers.localhost:8787" {
		t.Errorf("parts = %+v", o.Parts)
	}
	if want := (counts{Accounts: 2, Workers: 2, Versions: 3, Builds: 2}); o.Counts != want {
		t.Errorf("counts = %+v, want %+v", o.Counts, want)
	}
	if want := []string{"CLOUDFLARE_API_BASE_URL", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}; !slices.Equal(o.EnvVars, want) {
		t.Errorf("env vars = %q, want %q", o.EnvVars, want)
	}
	if o.EnvCmd != `eval "$(sudo octo env)"` {
		t.Errorf("env command = %q", o.EnvCmd)
	}
	if o.APIURL != "http://127.0.0.1:8787/client/v4" || o.Dash != "http://127.0.0.1:8787/" || o.Subdomain != "octo" || o.Account != acct {
		t.Errorf("urls = %q %q %q %q", o.APIURL, o.Dash, o.Subdomain, o.Account)
	}

	// One part failing makes the platform unhealthy; no parts neither.
	w.stat.Parts[3] = Part{Name: "s3", State: "failed", Error: "listen: address in use"}
	w.getJSON(t, "/dashboard/api/overview", &o)
	if o.Healthy || o.Parts[3].Error != "listen: address in use" {
		t.Errorf("with a failed part: healthy=%v parts[3]=%+v", o.Healthy, o.Parts[3])
	}
	w.stat = Status{State: "starting"}
	w.getJSON(t, "/dashboard/api/overview", &o)
	if o.Healthy || o.Parts == nil {
		t.Errorf("without parts: healthy=%v parts=%v", o.Healthy, o.Parts)
	}
}

type workersAnswer struct {
	Accounts []struct {
		ID        string       `json:"id"`
		Name      string       `json:"name"`
		Subdomain string       `json:"subdomain"`
		Namespace string       `json:"namespace"`
		Default   bool         `json:"default"`
		Workers   []workerJSON `json:"workers"`
	} `json:"accounts"`
}

func TestWorkers(t *testing.T) {
	w := newWorld(t, testPort)
	var out workersAnswer
	w.getJSON(t, "/dashboard/api/workers", &out)
	if len(out.Accounts) != 2 {
		t.Fatalf("accounts = %+v", out.Accounts)
	}
	a := out.Accounts[0]
	if a.ID != acct || !a.Default || a.Subdomain != "octo" || a.Namespace != ns || len(a.Workers) != 2 {
		t.Fatalf("first account = %+v, want the default one with 2 workers", a)
	}
	if b := out.Accounts[1]; b.ID != acct2 || b.Name != acct2 || b.Subdomain != acct2 || len(b.Workers) != 0 || b.Workers == nil {
		t.Errorf("second account = %+v (name and subdomain default to the ID; workers [])", b)
	}
	esm := a.Workers[0]
	if esm.Script != "e2e-esm" || esm.URL != "http://e2e-esm.octo.workers.localhost:8787/" || esm.Versions != 2 || !esm.Ready {
		t.Errorf("e2e-esm = %+v", esm)
	}
	if esm.Deployment == nil || len(esm.Deployment.Versions) != 1 || esm.Deployment.Versions[0] != (trafficJSON{VersionID: esmV2, Number: 2, Percentage: 100}) {
		t.Errorf("e2e-esm deployment = %+v", esm.Deployment)
	}
	if esm.LastDeploy == nil || !esm.LastDeploy.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("e2e-esm last deploy = %v", esm.LastDeploy)
	}
	if esm.Build != (buildStateJSON{Phase: "Succeeded", JobBuilder: "octo-build-b"}) {
		t.Errorf("e2e-esm build = %+v", esm.Build)
	}
	if v := a.Workers[1]; v.Script != "e2e-vars" || v.Build.Phase != "Succeeded" {
		t.Errorf("e2e-vars = %+v", v)
	}

	// A worker whose active version no build includes yet is Waiting; one
	// left out of its bundle is Failed with the reason.
	var rel apiv1.WorkerRelease
	ctx := context.Background()
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "e2e-esm"}, &rel); err != nil {
		t.Fatal(err)
	}
	rel.Spec.PushDeployment(deployment("d9999999-9999-4999-8999-999999999999", t0.Add(5*time.Minute), "",
		apiv1.VersionTraffic{VersionID: esmV1, Percentage: 50}, apiv1.VersionTraffic{VersionID: esmV2, Percentage: 50}))
	if err := w.c.Update(ctx, &rel); err != nil {
		t.Fatal(err)
	}
	w.getJSON(t, "/dashboard/api/workers", &out)
	if b := out.Accounts[0].Workers[0].Build; b.Phase != "Waiting" {
		t.Errorf("split over a version no build has: build = %+v, want Waiting", b)
	}
	var bundle apiv1.WorkerBundle
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "octo"}, &bundle); err != nil {
		t.Fatal(err)
	}
	bundle.Status.FailedWorkers = []apiv1.FailedWorker{{ScriptName: "e2e-esm", VersionID: esmV1, Message: "Uncaught Error: boom"}}
	if err := w.c.Update(ctx, &bundle); err != nil {
		t.Fatal(err)
	}
	w.getJSON(t, "/dashboard/api/workers", &out)
	if b := out.Accounts[0].Workers[0].Build; b.Phase != "Failed" || b.Message != "Uncaught Error: boom" {
		t.Errorf("failed version: build = %+v", b)
	}
}

func TestWorkerPage(t *testing.T) {
	w := newWorld(t, testPort)
	var p workerPageJSON
	w.getJSON(t, "/dashboard/api/workers/"+acct+"/e2e-esm", &p)
	if p.Account.ID != acct || p.Worker.Script != "e2e-esm" || len(p.Versions) != 2 || len(p.Deployments) != 2 {
		t.Fatalf("page = %+v", p)
	}
	v2, v1 := p.Versions[0], p.Versions[1]
	if v2.ID != esmV2 || v2.Number != 2 || v2.Message != "second" || v2.Tag != "v2-tag" || v2.Percentage != 100 ||
		v2.TriggeredBy != "upload" || !v2.CreatedAt.Equal(t0.Add(2*time.Minute)) || v2.Phase != "Ready" || v2.StartupTimeMs != 12 {
		t.Errorf("versions[0] = %+v, want v2 (newest first), active", v2)
	}
	if v1.ID != esmV1 || v1.Percentage != 0 || v1.Message != "first" || len(v1.Modules) != 1 || v1.Modules[0].Name != "index.js" {
		t.Errorf("versions[1] = %+v", v1)
	}
	if d := p.Deployments[0]; !d.Active || d.Versions[0].VersionID != esmV2 || d.Versions[0].Number != 2 || p.Deployments[1].Active {
		t.Errorf("deployments = %+v", p.Deployments)
	}
	if p.Cron.Schedules == nil || p.Cron.Runs == nil || len(p.Cron.Schedules)+len(p.Cron.Runs) != 0 {
		t.Errorf("cron of a worker without triggers = %+v, want empty lists", p.Cron)
	}
	// The gateway's counts, by minute over the last hour and by version.
	m := p.Metrics
	if m == nil || m.Window != "1h" || len(m.Points) != 60 || m.Total.Requests != 10 || m.Total.Errors != 2 || m.Total.Status[1] != 8 {
		t.Fatalf("metrics = %+v", m)
	}
	if last := m.Points[len(m.Points)-2]; last.Requests != 10 || last.ByVersion[esmV2] != 7 || last.ByVersion[esmV1] != 3 || last.P50 != 5 {
		t.Errorf("the minute of the requests = %+v", last)
	}
	// The CPU and memory of its bundle's pods, shared with e2e-vars; not
	// the other account's.
	u := p.Usage
	if u == nil || len(u.Points) != 60 || u.CPUSeconds != 3 || len(u.Bundles) != 1 || u.Bundles[0] != (usageBundleJSON{Name: "octo", Workers: 2}) {
		t.Fatalf("usage = %+v", u)
	}
	if last := u.Points[len(u.Points)-2]; last.CPUSeconds != 3 || last.Cores != 0.05 || last.MemoryBytes != 150<<20 {
		t.Errorf("the minute of the samples = %+v, want 3 s, 0.05 cores, 150 MiB", last)
	}
	p = workerPageJSON{}
	w.getJSON(t, "/dashboard/api/workers/"+acct+"/e2e-esm?window=24h", &p)
	if m := p.Metrics; m == nil || m.Window != "24h" || len(m.Points) != 24 || m.Total.Requests != 10 {
		t.Errorf("metrics over a day = %+v", m)
	}

	p = workerPageJSON{}
	w.getJSON(t, "/dashboard/api/workers/"+acct+"/e2e-vars", &p)
	if a := p.Versions[0].Assets; a == nil || *a != (assetsJSON{Files: 3, NotFoundHandling: "single-page-application", Binding: "ASSETS"}) {
		t.Errorf("assets = %+v", a)
	}
	if len(p.Cron.Schedules) != 1 || p.Cron.Schedules[0].Cron != "*/5 * * * *" || len(p.Cron.Runs) != 2 ||
		p.Cron.Runs[0] != (cronRunJSON{Cron: "*/5 * * * *", ScheduledTime: t0.Add(10 * time.Minute), VersionID: varsV1, Outcome: "exception", DurationMs: 12}) {
		t.Errorf("cron = %+v", p.Cron)
	}
	want := []bindingJSON{
		{Name: "GREETING", Type: "plain_text", Value: "hello"},
		{Name: "CONF", Type: "json", Value: `{"a":1}`},
		{Name: "MYKV", Type: "kv_namespace", Value: kvNS},
		{Name: "API_KEY", Type: "secret_text", Secret: true},
	}
	if got := p.Versions[0].Bindings; len(got) != len(want) {
		t.Fatalf("bindings = %+v", got)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("binding %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}

	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/workers/"+acct+"/nope", "", nil), http.StatusNotFound, `no worker "nope"`)
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/workers/"+acct2+"/e2e-esm", "", nil), http.StatusNotFound, "no worker")
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/workers/ffff/e2e-esm", "", nil), http.StatusNotFound, "no account")
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/workers/"+acct+"/Bad%20Name", "", nil), http.StatusBadRequest, "invalid script name")
}

func TestBuilds(t *testing.T) {
	w := newWorld(t, testPort)
	var out struct {
		Builds []buildJSON `json:"builds"`
	}
	w.getJSON(t, "/dashboard/api/builds", &out)
	if len(out.Builds) != 2 {
		t.Fatalf("builds = %+v", out.Builds)
	}
	b, a := out.Builds[0], out.Builds[1]
	if b.Name != "octo-build-b" || b.Phase != "Succeeded" || b.Digest != "sha256:"+strings.Repeat("b", 64) || b.DurationMs != 3000 ||
		!b.Current || b.Account != acct || b.Bundle != "octo" || len(b.Inputs) != 2 || b.Inputs[0] != (inputJSON{Script: "e2e-esm", VersionID: esmV2}) {
		t.Errorf("newest build = %+v", b)
	}
	// Failed, never finished: the duration runs to the dashboard's clock.
	if a.Name != "octo-build-a" || a.Phase != "Failed" || a.Message != "push: registry unavailable" || a.Current || a.DurationMs != int64(9*time.Minute/time.Millisecond) || a.FinishedAt != nil {
		t.Errorf("older build = %+v", a)
	}
}

func TestCluster(t *testing.T) {
	w := newWorld(t, testPort)
	var out struct {
		Bundles []bundleJSON `json:"bundles"`
		Pods    []podJSON    `json:"pods"`
		Events  []eventJSON  `json:"events"`
	}
	w.getJSON(t, "/dashboard/api/cluster", &out)
	if len(out.Bundles) != 1 || out.Bundles[0].Name != "octo" || out.Bundles[0].ReadyReplicas != 1 || out.Bundles[0].Workers != 2 ||
		len(out.Bundles[0].Conditions) != 2 || out.Bundles[0].Conditions[1] != (conditionJSON{Type: "Ready", Status: "True", Reason: "Ready"}) {
		t.Errorf("bundles = %+v", out.Bundles)
	}
	if len(out.Pods) != 2 {
		t.Fatalf("pods = %+v, want the 2 bundle pods", out.Pods)
	}
	crash, ok := out.Pods[0], out.Pods[1]
	if crash.Name != "octo-5c4b-fghij" || crash.Phase != "Pending" || crash.Ready != "0/1" || crash.Restarts != 5 || crash.Reason != "CrashLoopBackOff" {
		t.Errorf("crashing pod = %+v", crash)
	}
	if ok.Name != "octo-7d9f-abcde" || ok.Phase != "Running" || ok.Ready != "1/1" || ok.Restarts != 2 || ok.IP != "10.88.0.7" ||
		ok.Bundle != "octo" || ok.Account != acct || ok.StartedAt == nil || ok.MemoryBytes != 140<<20 || ok.MemoryLimitBytes != 272<<20 {
		t.Errorf("running pod = %+v", ok)
	}
	if len(out.Events) != 2 || out.Events[0].Reason != "BackOff" || out.Events[0].Object != "Pod/octo-5c4b-fghij" || out.Events[0].Count != 4 ||
		out.Events[0].Type != "Warning" || out.Events[1].Object != "WorkerBundle/octo" {
		t.Errorf("events = %+v, want BackOff then BuildRequested (newest first, octo's objects only)", out.Events)
	}
}

func TestKV(t *testing.T) {
	w := newWorld(t, testPort)
	base := "/dashboard/api/kv/" + acct
	var nss struct {
		Namespaces []struct{ ID, Title string } `json:"namespaces"`
	}
	w.getJSON(t, base, &nss)
	if len(nss.Namespaces) != 1 || nss.Namespaces[0].ID != w.kvNS || nss.Namespaces[0].Title != "e2e-kv" {
		t.Errorf("namespaces = %+v", nss)
	}
	w.getJSON(t, "/dashboard/api/kv/"+acct2, &nss)
	if nss.Namespaces == nil || len(nss.Namespaces) != 0 {
		t.Errorf("namespaces of the other account = %#v, want []", nss.Namespaces)
	}

	var keys struct {
		Keys   []kvKeyJSON `json:"keys"`
		Cursor string      `json:"cursor"`
	}
	w.getJSON(t, base+"/"+w.kvNS+"/keys?prefix=config%2F", &keys)
	if len(keys.Keys) != 2 || keys.Keys[0].Name != "config/limit" || keys.Keys[1].Name != "config/theme" {
		t.Errorf("keys with prefix config/ = %+v", keys)
	}

	var v kvValueJSON
	w.getJSON(t, base+"/"+w.kvNS+"/value?key=config%2Ftheme", &v)
	if v != (kvValueJSON{Key: "config/theme", Size: 4, Preview: "dark"}) {
		t.Errorf("value = %+v", v)
	}
	w.getJSON(t, base+"/"+w.kvNS+"/value?key=big", &v)
	if v.Size != 10240 || !v.Truncated || len(v.Preview) != MaxPreview || v.Binary {
		t.Errorf("big value: size %d truncated %v preview %d bytes binary %v, want a 4 KiB preview of 10 KiB", v.Size, v.Truncated, len(v.Preview), v.Binary)
	}
	w.getJSON(t, base+"/"+w.kvNS+"/value?key=blob", &v)
	if !v.Binary || v.Preview != "00 01 fe ff" || v.Size != 4 {
		t.Errorf("binary value = %+v", v)
	}
	wantError(t, w.do(t, http.MethodGet, base+"/"+w.kvNS+"/value?key=missing", "", nil), http.StatusNotFound, "key not found")
	wantError(t, w.do(t, http.MethodGet, base+"/"+w.kvNS+"/value", "", nil), http.StatusBadRequest, "no key")

	// Put and delete change the store.
	rec := w.do(t, http.MethodPut, base+"/"+w.kvNS+"/value?key=new%2Fkey%20x", "fresh value", map[string]string{"Content-Type": "application/octet-stream"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok":true`) {
		t.Fatalf("put = %d %s", rec.Code, rec.Body)
	}
	if got := w.kvValue(t, "new/key x"); got != "fresh value" {
		t.Errorf("the store holds %q after the put", got)
	}
	w.getJSON(t, base+"/"+w.kvNS+"/value?key=new%2Fkey%20x", &v)
	if v.Preview != "fresh value" {
		t.Errorf("after put: %+v", v)
	}
	if rec := w.do(t, http.MethodDelete, base+"/"+w.kvNS+"/value?key=greeting", "", nil); rec.Code != http.StatusOK {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	wantError(t, w.do(t, http.MethodGet, base+"/"+w.kvNS+"/value?key=greeting", "", nil), http.StatusNotFound, "key not found")
	wantError(t, w.do(t, http.MethodGet, base+"/bbbb/keys", "", nil), http.StatusNotFound, "namespace not found")
}

func TestActions(t *testing.T) {
	w := newWorld(t, testPort)
	active := func() []apiv1.VersionTraffic {
		var rel apiv1.WorkerRelease
		if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "e2e-esm"}, &rel); err != nil {
			t.Fatal(err)
		}
		return rel.ActiveDeployment().Versions
	}

	// Rollback: a 100 % deployment of the version, through the API.
	rec := w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `{"script":"e2e-esm","version":"`+esmV1+`"}`, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok":true`) {
		t.Fatalf("rollback = %d %s", rec.Code, rec.Body)
	}
	var rel apiv1.WorkerRelease
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "e2e-esm"}, &rel); err != nil {
		t.Fatal(err)
	}
	if d := rel.ActiveDeployment(); d.Strategy != apiv1.DeploymentStrategyPercentage || len(d.Versions) != 1 ||
		d.Versions[0] != (apiv1.VersionTraffic{VersionID: esmV1, Percentage: 100}) || d.Annotations[apiv1.AnnotationMessage] == "" ||
		d.AuthorEmail != "dev@octo.localhost" || len(rel.Spec.Deployments) != 3 {
		t.Errorf("after rollback the active deployment is %+v (%d in the history)", d, len(rel.Spec.Deployments))
	}

	// Split 30/70.
	rec = w.do(t, http.MethodPost, "/dashboard/api/actions/split", `{"account":"`+acct+`","script":"e2e-esm","a":"`+esmV1+`","b":"`+esmV2+`","percentA":30}`, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("split = %d %s", rec.Code, rec.Body)
	}
	if a := active(); len(a) != 2 || a[0] != (apiv1.VersionTraffic{VersionID: esmV1, Percentage: 30}) || a[1] != (apiv1.VersionTraffic{VersionID: esmV2, Percentage: 70}) {
		t.Errorf("after split the active deployment is %+v", a)
	}

	// The API's refusals come back with its status, code and message.
	rec = w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `{"script":"e2e-esm","version":"44444444-4444-4444-8444-444444444444"}`, nil)
	wantError(t, rec, http.StatusNotFound, "not found")
	if !strings.Contains(rec.Body.String(), `"code":10217`) {
		t.Errorf("API error code not passed on: %s", rec.Body)
	}
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/split", `{"script":"e2e-esm","a":"`+esmV1+`","b":"`+esmV2+`","percentA":130}`, nil), http.StatusBadRequest, "between 0 and 100")
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/split", `{"script":"e2e-esm","a":"`+esmV1+`"}`, nil), http.StatusBadRequest, "needs versions a and b")
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `{"script":"e2e-esm"}`, nil), http.StatusBadRequest, "no version")
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `{"version":"x"}`, nil), http.StatusBadRequest, "no script")
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `{"script":"e2e-esm","bogus":1}`, nil), http.StatusBadRequest, "invalid JSON")
	wantError(t, w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", `not json`, nil), http.StatusBadRequest, "invalid JSON")

	// Delete.
	rec = w.do(t, http.MethodDelete, "/dashboard/api/workers/"+acct+"/e2e-vars", "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	var vars apiv1.WorkerRelease
	if err := w.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "e2e-vars"}, &vars); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("the release of e2e-vars after delete: %v", err)
	}
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/workers/"+acct+"/e2e-vars", "", nil), http.StatusNotFound, "no worker")
	wantError(t, w.do(t, http.MethodDelete, "/dashboard/api/workers/"+acct+"/e2e-vars", "", nil), http.StatusNotFound, "does not exist")
}

func TestProtection(t *testing.T) {
	w := newWorld(t, testPort)
	rollback := `{"script":"e2e-esm","version":"` + esmV1 + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		contains                 string
	}{
		// DNS rebinding: a foreign name resolving to 127.0.0.1.
		{"page, foreign Host", "GET", "/", "", map[string]string{"Host": "evil.example:8787"}, 403, "not allowed"},
		{"static, foreign Host", "GET", "/static/app.js", "", map[string]string{"Host": "evil.example:8787"}, 403, "not allowed"},
		{"JSON, foreign Host", "GET", "/dashboard/api/overview", "", map[string]string{"Host": "evil.example:8787"}, 403, "not allowed"},
		{"JSON, other port", "GET", "/dashboard/api/overview", "", map[string]string{"Host": "127.0.0.1:9999"}, 403, "not allowed"},
		{"JSON, no port", "GET", "/dashboard/api/overview", "", map[string]string{"Host": "localhost"}, 403, "not allowed"},
		{"JSON, workers host", "GET", "/dashboard/api/overview", "", map[string]string{"Host": "x.octo.workers.localhost:8787"}, 403, "not allowed"},
		{"POST, foreign Host", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{"Host": "evil.example:8787", "Origin": "http://evil.example:8787"}, 403, "not allowed"},
		// Cross-origin requests.
		{"POST, cross Origin", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{"Origin": "http://evil.example"}, 403, "cross-origin"},
		{"POST, null Origin", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{"Origin": "null"}, 403, "cross-origin"},
		{"POST, other loopback Origin", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{"Origin": "http://localhost:8787"}, 403, "cross-origin"},
		{"POST, worker Origin", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{"Origin": "http://e2e-esm.octo.workers.localhost:8787"}, 403, "cross-origin"},
		{"DELETE, cross site", "DELETE", "/dashboard/api/workers/" + acct + "/e2e-esm", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": ""}, 403, "cross-origin"},
		{"GET, cross site", "GET", "/dashboard/api/workers", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"GET, same site", "GET", "/dashboard/api/overview", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "cross-origin"},
		{"GET, cross Origin", "GET", "/dashboard/api/overview", "", map[string]string{"Origin": "http://evil.example"}, 403, "cross-origin"},
		{"tail, cross site", "GET", "/dashboard/api/tail/" + acct + "/e2e-esm", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		// The CSRF token.
		{"POST, no token", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{TokenHeader: ""}, 403, "missing X-Octo-Token"},
		{"POST, wrong token", "POST", "/dashboard/api/actions/rollback", rollback, map[string]string{TokenHeader: "guess"}, 403, "wrong X-Octo-Token"},
		{"split, no token", "POST", "/dashboard/api/actions/split", `{}`, map[string]string{TokenHeader: ""}, 403, "missing"},
		{"DELETE, no token", "DELETE", "/dashboard/api/workers/" + acct + "/e2e-esm", "", map[string]string{TokenHeader: ""}, 403, "missing"},
		{"KV put, no token", "PUT", "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/value?key=a", "x", map[string]string{TokenHeader: ""}, 403, "missing"},
		{"KV delete, API token instead", "DELETE", "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/value?key=a", "", map[string]string{TokenHeader: testAPIToken}, 403, "wrong"},
		// Unknown routes answer JSON 404s after the checks.
		{"unknown route", "GET", "/dashboard/api/nope", "", nil, 404, "Not Found"},
		{"unknown route, foreign Host", "GET", "/dashboard/api/nope", "", map[string]string{"Host": "evil.example"}, 403, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.state(t)
			rec := w.do(t, tc.method, tc.path, tc.body, tc.hdr)
			if !strings.HasPrefix(tc.path, APIPrefix) {
				if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.contains) {
					t.Errorf("%s %s = %d %q, want %d with %q", tc.method, tc.path, rec.Code, rec.Body, tc.status, tc.contains)
				}
			} else {
				wantError(t, rec, tc.status, tc.contains)
			}
			if after := w.state(t); after != before {
				t.Errorf("a refused request changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// What is allowed: both loopback names, navigation without Sec-Fetch-*
	// headers, same-origin with them, and "none" (typed in the address bar).
	for _, hdr := range []map[string]string{
		{"Host": "localhost:8787"},
		{"Host": "LOCALHOST:8787"},
		{"Sec-Fetch-Site": ""},
		{"Sec-Fetch-Site": "none"},
		{"Origin": "http://127.0.0.1:8787"},
	} {
		if rec := w.do(t, http.MethodGet, "/dashboard/api/overview", "", hdr); rec.Code != http.StatusOK {
			t.Errorf("GET overview with %v = %d %s", hdr, rec.Code, rec.Body)
		}
	}
	rec := w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", rollback,
		map[string]string{"Host": "localhost:8787", "Origin": "http://localhost:8787"})
	if rec.Code != http.StatusOK {
		t.Errorf("same-origin POST on localhost = %d %s", rec.Code, rec.Body)
	}
	// Without Origin (older browsers on same-origin GET-like requests, curl) the token suffices.
	if rec := w.do(t, http.MethodPost, "/dashboard/api/actions/rollback", rollback, map[string]string{"Origin": "", "Sec-Fetch-Site": ""}); rec.Code != http.StatusOK {
		t.Errorf("POST with token and no Origin = %d %s", rec.Code, rec.Body)
	}
}

func TestPage(t *testing.T) {
	w := newWorld(t, testPort)
	rec := w.do(t, http.MethodGet, "/", "", map[string]string{"Sec-Fetch-Site": "none"})
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header())
	}
	page := rec.Body.String()
	if !strings.Contains(page, `<meta name="octo-token" content="`+testDashTok+`">`) || strings.Contains(page, tokenPlaceholder) {
		t.Errorf("page does not carry the dashboard token:\n%s", page)
	}
	// Without a session: the login page, without the token.
	rec = w.do(t, http.MethodGet, "/", "", map[string]string{"Sec-Fetch-Site": "none", "Cookie": ""})
	if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), testDashTok) ||
		!strings.Contains(rec.Body.String(), "sudo octo dashboard") || rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("GET / without a session = %d %s\n%s", rec.Code, rec.Header(), rec.Body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("page lacks %s", h)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for path, ct := range map[string]string{"/static/app.js": "javascript", "/static/app.css": "text/css", "/static/favicon.svg": "image/svg+xml"} {
		rec := w.do(t, http.MethodGet, path, "", nil)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), ct) || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	for _, path := range []string{"/static/index.html", "/static/", "/static/nope.js"} {
		if rec := w.do(t, http.MethodGet, path, "", nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404 (the page and its token only at /)", path, rec.Code)
		}
	}
	// Nothing from the internet: every URL in the page and its assets is local.
	for _, f := range []string{"static/index.html", "static/app.js", "static/app.css"} {
		b, _ := staticFS.ReadFile(f)
		for _, bad := range []string{"https://", "//fonts.", "cdn", "@import"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q: no asset may come from the internet", f, bad)
			}
		}
	}
}

func TestNewToken(t *testing.T) {
	w := newWorld(t, testPort)
	a, err := New(Options{Reader: w.c, Store: w.st, EdgePort: testPort})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Options{Reader: w.c, Store: w.st, EdgePort: testPort})
	if len(a.Token()) != 64 || a.Token() == b.Token() {
		t.Errorf("random tokens %q, %q", a.Token(), b.Token())
	}
	if a.URL() != "http://127.0.0.1:8787/" {
		t.Errorf("URL = %q", a.URL())
	}
	if _, err := New(Options{Reader: w.c}); err == nil {
		t.Error("New without an edge port succeeded")
	}
	if _, err := New(Options{EdgePort: 1}); err == nil {
		t.Error("New without a Reader succeeded")
	}
}

// Secret values never leave the server: no answer of any endpoint holds
// the value of a Secret, the API token or the S3 secret key (even to a
// logged-in browser), while the binding's name shows as hidden.
func TestNoSecretInAnswers(t *testing.T) {
	w := newWorld(t, testPort)
	paths := []string{"/", "/dashboard/api/overview", "/dashboard/api/workers", "/dashboard/api/builds", "/dashboard/api/cluster",
		"/dashboard/api/workers/" + acct + "/e2e-vars", "/dashboard/api/workers/" + acct + "/e2e-esm",
		"/dashboard/api/kv/" + acct, "/dashboard/api/kv/" + acct + "/" + w.kvNS + "/keys"}
	for _, p := range paths {
		rec := w.do(t, http.MethodGet, p, "", nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d", p, rec.Code)
		}
		for _, secret := range []string{secretValue, testAPIToken, testS3Secret} {
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("GET %s shows the secret %q", p, secret)
			}
		}
	}
	body := w.do(t, http.MethodGet, "/dashboard/api/workers/"+acct+"/e2e-vars", "", nil).Body.String()
	if !strings.Contains(body, `{"name":"API_KEY","type":"secret_text","secret":true}`) {
		t.Errorf("secret binding not shown as hidden: %s", body)
	}
}

func TestErrorRendering(t *testing.T) {
	w := newWorld(t, testPort)
	// A method the route does not have: still JSON.
	rec := w.do(t, http.MethodPatch, "/dashboard/api/workers", "", nil)
	if rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound {
		t.Errorf("PATCH /workers = %d", rec.Code)
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("error Content-Type %q", rec.Header().Get("Content-Type"))
	}
	if w.d.ErrorPrefix() != "/dashboard/" {
		t.Errorf("ErrorPrefix = %q", w.d.ErrorPrefix())
	}
}

// The tail streams the hub's events of the script as SSE, from a real
// server (the recorder cannot stream).
func TestTailSSE(t *testing.T) {
	w := newWorld(t, testPort)
	heartbeat = 50 * time.Millisecond
	t.Cleanup(func() { heartbeat = 15 * time.Second })
	srv := httptest.NewServer(w.e)
	t.Cleanup(srv.Close)

	get := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Host = host
		req.Header.Set("Cookie", SessionCookie+"="+w.cookie)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/dashboard/api/tail/"+acct+"/e2e-esm", map[string]string{"Sec-Fetch-Site": "same-origin"})
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail = %d %s", resp.StatusCode, resp.Header)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(want string) string {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if strings.HasPrefix(l, want) {
					return l
				}
			case <-deadline:
				t.Fatalf("no line %q", want)
			}
		}
	}
	next("event: ready")
	next(": ping") // heartbeats keep the stream open
	// Another script's and another account's events are not sent.
	w.hub.Publish(tail.Event{Account: acct, ScriptName: "e2e-vars", Outcome: "ok", Event: json.RawMessage(`{"request":{"url":"http://x/other"}}`)})
	w.hub.Publish(tail.Event{Account: acct2, ScriptName: "e2e-esm", Outcome: "ok", Event: json.RawMessage(`{"request":{"url":"http://x/acct2"}}`)})
	n := w.hub.Publish(tail.Event{Account: acct, ScriptName: "e2e-esm", Outcome: "ok", EventTimestamp: 1,
		Event: json.RawMessage(`{"request":{"url":"http://e2e-esm.octo.workers.localhost:8787/tailed","method":"GET"},"response":{"status":200}}`),
		Logs:  []tail.Log{{Message: []json.RawMessage{json.RawMessage(`"esm handled /tailed"`)}, Level: "log"}}})
	if n != 1 {
		t.Fatalf("Publish reached %d listeners, want 1", n)
	}
	next("event: tail")
	data := next("data: ")
	var ev tail.Event
	if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ScriptName != "e2e-esm" || !strings.Contains(string(ev.Event), "/tailed") || len(ev.Logs) != 1 {
		t.Errorf("event = %+v", ev)
	}

	// Refusals before streaming.
	r2 := get("/dashboard/api/tail/ffff/e2e-esm", nil)
	r2.Body.Close()
	if r2.StatusCode != 404 {
		t.Errorf("tail of an unknown account = %d", r2.StatusCode)
	}
	r3 := get("/dashboard/api/tail/"+acct+"/Bad_Name!", nil)
	r3.Body.Close()
	if r3.StatusCode != 400 {
		t.Errorf("tail of a bad script name = %d", r3.StatusCode)
	}
}

// freePort returns a loopback listener on a free port.
func freePort(t testing.TB) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	return ln, port
}

func TestR2(t *testing.T) {
	w := newWorld(t, testPort)
	base := "/dashboard/api/r2/" + acct
	var buckets struct {
		Buckets []r2BucketJSON `json:"buckets"`
	}
	w.getJSON(t, base, &buckets)
	if len(buckets.Buckets) != 2 || buckets.Buckets[0].Name != "e2e-assets" || buckets.Buckets[1].Name != "e2e-empty" {
		t.Fatalf("buckets = %+v", buckets)
	}
	var size int64
	for _, v := range r2Fixture {
		size += int64(len(v))
	}
	if b := buckets.Buckets[0]; b.Objects != int64(len(r2Fixture)) || b.Bytes != size || b.CreatedAt.IsZero() {
		t.Errorf("e2e-assets = %+v, want %d objects, %d bytes", b, len(r2Fixture), size)
	}
	if b := buckets.Buckets[1]; b.Objects != 0 || b.Bytes != 0 {
		t.Errorf("e2e-empty = %+v", b)
	}
	// The counts are reused for r2UsageTTL (the page polls every 2 s).
	if _, err := w.st.R2().Put(context.Background(), acct, "e2e-empty", "new.txt", strings.NewReader("new"), 3, store.R2PutOptions{}); err != nil {
		t.Fatal(err)
	}
	w.getJSON(t, base, &buckets)
	if b := buckets.Buckets[1]; b.Objects != 0 {
		t.Errorf("e2e-empty within the TTL = %+v, want the counted 0 objects", b)
	}
	w.advance(r2UsageTTL)
	w.getJSON(t, base, &buckets)
	if b := buckets.Buckets[1]; b.Objects != 1 || b.Bytes != 3 {
		t.Errorf("e2e-empty after the TTL = %+v, want 1 object of 3 bytes", b)
	}
	w.getJSON(t, "/dashboard/api/r2/"+acct2, &buckets)
	if buckets.Buckets == nil || len(buckets.Buckets) != 0 {
		t.Errorf("buckets of the other account = %#v, want []", buckets.Buckets)
	}

	var page struct {
		Objects  []r2ObjectJSON `json:"objects"`
		Prefixes []string       `json:"prefixes"`
		Cursor   string         `json:"cursor"`
	}
	w.getJSON(t, base+"/e2e-assets/objects", &page)
	var keys []string
	for _, o := range page.Objects {
		keys = append(keys, o.Key)
	}
	if fmt.Sprint(keys) != "[index.html notes.txt]" || fmt.Sprint(page.Prefixes) != "[docs/ img/]" || page.Cursor != "" {
		t.Errorf("top level = %v %v cursor %q", keys, page.Prefixes, page.Cursor)
	}
	if o := page.Objects[0]; o.ContentType != "text/html" || o.Size != int64(len(r2Fixture["index.html"])) || o.ETag == "" {
		t.Errorf("index.html = %+v", o)
	}
	w.getJSON(t, base+"/e2e-assets/objects?prefix=docs%2F", &page)
	if len(page.Objects) != 1 || page.Objects[0].Key != "docs/a.md" || fmt.Sprint(page.Prefixes) != "[docs/deep/]" {
		t.Errorf("docs/ = %+v", page)
	}

	var o r2ObjectPreviewJSON
	w.getJSON(t, base+"/e2e-assets/object?key=index.html", &o)
	if o.Preview != "<h1>hello from R2</h1>" || o.Binary || o.Truncated || o.ContentType != "text/html" {
		t.Errorf("index.html preview = %+v", o)
	}
	w.getJSON(t, base+"/e2e-assets/object?key=img%2Flogo.png", &o)
	if !o.Binary || !strings.HasPrefix(o.Preview, "89 50 4e 47") || o.Custom["author"] != "octo" || o.ContentType != "image/png" {
		t.Errorf("logo preview = %+v", o)
	}
	wantError(t, w.do(t, http.MethodGet, base+"/e2e-assets/object?key=missing", "", nil), http.StatusNotFound, "")
	wantError(t, w.do(t, http.MethodGet, base+"/e2e-assets/object", "", nil), http.StatusBadRequest, "no key")
	wantError(t, w.do(t, http.MethodGet, base+"/no-such-bucket/objects", "", nil), http.StatusNotFound, "")
	// The other account cannot name the first one's bucket.
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/r2/"+acct2+"/e2e-assets/objects", "", nil), http.StatusNotFound, "")
}

func TestD1(t *testing.T) {
	w := newWorld(t, testPort)
	base := "/dashboard/api/d1/" + acct
	var dbs struct {
		Databases []d1DatabaseJSON `json:"databases"`
	}
	w.getJSON(t, base, &dbs)
	if len(dbs.Databases) != 1 || dbs.Databases[0].UUID != w.d1DB || dbs.Databases[0].Name != "e2e-db" ||
		dbs.Databases[0].Tables != 2 || dbs.Databases[0].Bytes <= 0 {
		t.Fatalf("databases = %+v", dbs)
	}
	w.getJSON(t, "/dashboard/api/d1/"+acct2, &dbs)
	if dbs.Databases == nil || len(dbs.Databases) != 0 {
		t.Errorf("databases of the other account = %#v, want []", dbs.Databases)
	}

	var tables struct {
		Tables []d1TableJSON `json:"tables"`
	}
	w.getJSON(t, base+"/"+w.d1DB+"/tables", &tables)
	if got := fmt.Sprint(tables.Tables); got != "[{audit [{at TEXT false} {what TEXT false}] 0} {users [{id INTEGER true} {name TEXT false}] 3}]" {
		t.Errorf("tables = %s", got)
	}

	var res struct {
		Columns   []string `json:"columns"`
		Rows      [][]any  `json:"rows"`
		Truncated bool     `json:"truncated"`
	}
	query := func(sql string) *httptest.ResponseRecorder {
		b, _ := json.Marshal(map[string]string{"sql": sql})
		return w.do(t, http.MethodPost, base+"/"+w.d1DB+"/query", string(b), map[string]string{"Content-Type": "application/json"})
	}
	rec := query("SELECT id, name FROM users WHERE name LIKE '%a%' ORDER BY id")
	if rec.Code != http.StatusOK {
		t.Fatalf("query = %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Columns, res.Rows, res.Truncated) != "[id name] [[1 ada] [2 grace]] false" {
		t.Errorf("query = %+v", res)
	}

	// Writes are refused in D1's envelope code and change nothing.
	before := w.state(t)
	wantError(t, query("DELETE FROM users"), http.StatusBadRequest, "Only read statements")
	wantError(t, query("WITH x AS (SELECT 1) DELETE FROM users"), http.StatusBadRequest, "readonly")
	wantError(t, query("SELECT * FROM nope"), http.StatusBadRequest, "no such table")
	w.getJSON(t, base+"/"+w.d1DB+"/tables", &tables)
	if tables.Tables[1].Rows != 3 || w.state(t) != before {
		t.Errorf("a refused query changed something: users has %d rows", tables.Tables[1].Rows)
	}
	wantError(t, w.do(t, http.MethodPost, base+"/"+w.d1DB+"/query", `{"sql": 1}`, map[string]string{"Content-Type": "application/json"}), http.StatusBadRequest, "invalid JSON")
	wantError(t, w.do(t, http.MethodGet, "/dashboard/api/d1/"+acct2+"/"+w.d1DB+"/tables", "", nil), http.StatusNotFound, "")
}
