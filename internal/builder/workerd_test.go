package builder

// A test with the embedded workerd: the real base layer, real validation,
// and the built config served by workerd. Skipped without `make workerd`.

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

func TestBuildWithWorkerd(t *testing.T) {
	if !workerd.Embedded() {
		t.Skip("built without workerd: run `make workerd` first")
	}
	if testing.Short() {
		t.Skip("short")
	}
	bin, err := workerd.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	blobs := &fakeBlobs{m: map[string][]byte{}}
	b := &Builder{Registry: reg, WorkerdPath: bin, Blobs: blobs, TempDir: t.TempDir(),
		PodCredential: func(accountID string) string { return "cred-of-" + accountID }}
	ctx := context.Background()
	// The pod API: it records the headers workerd sends.
	podAPI := make(chan http.Header, 16)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("x-test-request", r.Method+" "+r.URL.Path)
		if strings.HasPrefix(r.URL.Path, workerd.TailPath) {
			// The cron of a scheduled run's trace event, if any.
			var events []struct {
				Event struct {
					Cron string `json:"cron"`
				} `json:"event"`
				Logs []struct {
					Message []any `json:"message"`
				} `json:"logs"`
			}
			b, _ := io.ReadAll(r.Body)
			if json.Unmarshal(b, &events) == nil && len(events) > 0 && events[0].Event.Cron != "" && len(events[0].Logs) > 0 {
				h.Set("x-test-body-cron", events[0].Event.Cron)
			}
		}
		podAPI <- h
		if r.Header.Get(workerd.KVHeader) != "" {
			_, _ = io.WriteString(w, "kv-value")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer api.Close()
	apiAddr := strings.TrimPrefix(api.URL, "http://")

	t0 := time.Now()
	base, err := b.EnsureBase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("base %s in %v", base, time.Since(t0))
	img := pull(t, base)
	layers, _ := img.Layers()
	size, _ := layers[0].Size()
	t.Logf("base layer: %d bytes compressed", size)
	_, files := layerFiles(t, layers[0])
	for _, f := range []string{"bin/workerd", "lib/x86_64-linux-gnu/libc.so.6", "etc/ssl/certs/ca-certificates.crt"} {
		if len(files[f]) == 0 {
			t.Errorf("base layer lacks %s", f)
		}
	}

	good := version(blobs, "hello", "0f0f0f0f-0000-4000-8000-000000000001", 1,
		`export default { async fetch(req, env) { return new Response("hello " + env.WHO + " " + env.TOKEN + " " + await env.KV.get("k")) },
		  async scheduled(c, env) { console.log("cron " + c.cron + " at " + c.scheduledTime); if (c.cron === "boom") throw new Error("boom"); } }`,
		apiv1.WorkerBinding{Name: "WHO", Type: apiv1.BindingPlainText, Text: "world"},
		apiv1.WorkerBinding{Name: "TOKEN", Type: apiv1.BindingSecretText},
		apiv1.WorkerBinding{Name: "KV", Type: apiv1.BindingKV, NamespaceID: "0123456789abcdef0123456789abcdef"})
	broken := version(blobs, "broken", "0e0e0e0e-0000-4000-8000-000000000001", 1, `export default { fetch( { }`)
	res, err := b.Build(ctx, BuildRequest{AccountID: account, BundleName: "octo",
		Workers:   []BuildWorker{{Version: good, Port: 8081}, {Version: broken, Port: 8082}},
		KVAddress: apiAddr, TailAddress: apiAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v; failed %+v", res.Image, res.Duration, res.Failed)
	if len(res.Failed) != 1 || res.Failed[0].ScriptName != "broken" || !strings.Contains(res.Failed[0].Message, "SyntaxError") {
		t.Fatalf("Failed = %+v, want broken with workerd's SyntaxError", res.Failed)
	}

	// Unpack the code layer and serve it with the host's workerd.
	layers, _ = pull(t, res.Image).Layers()
	dir := t.TempDir()
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		data, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc.Close()

	service := workerd.ServiceName("hello", good.Spec.VersionID)
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ctlR.Close()
	// The unix sockets go to a directory of the test (the image's SocketDir
	// is a volume of the pod).
	sockDir := t.TempDir()
	unixSock := filepath.Join(sockDir, "w.sock")
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "etc/worker/config.capnp"), "--control-fd=3",
		"--socket-addr", service+"=127.0.0.1:0", "--socket-addr", service+workerd.TracedSuffix+"=127.0.0.1:0",
		"--socket-addr", service+workerd.UnixSocketSuffix+"=unix:"+unixSock,
		"--socket-addr", service+workerd.TracedSuffix+workerd.UnixSocketSuffix+"=unix:"+filepath.Join(sockDir, "t.sock"),
		"--socket-addr", HealthWorkerName+"=127.0.0.1:0", "--socket-addr", workerd.TriggerWorkerName+"=127.0.0.1:0",
		"--experimental")
	cmd.Env = []string{SecretEnv("hello", "TOKEN") + "=s3cr3t"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{ctlW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctlW.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ports := make(chan map[string]int, 1)
	go func() {
		got := map[string]int{}
		sc := bufio.NewScanner(ctlR)
		for sc.Scan() {
			var ev struct {
				Event, Socket string
				Port          int
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "listen" {
				got[ev.Socket] = ev.Port
				if got[service] > 0 && got[service+workerd.TracedSuffix] > 0 && got[HealthWorkerName] > 0 && got[workerd.TriggerWorkerName] > 0 {
					ports <- got
					return
				}
			}
		}
		close(ports)
	}()
	var got map[string]int
	select {
	case got = <-ports:
	case <-time.After(20 * time.Second):
	}
	if got == nil {
		t.Fatalf("workerd did not listen; stderr:\n%s", stderr.String())
	}
	// The Worker answers on its unix socket too (the gateway's path on the
	// pod's node).
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", unixSock)
	}}}
	if resp, err := uc.Get("http://hello.example/"); err != nil {
		t.Errorf("unix socket: %v (stderr %s)", err, stderr.String())
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello world s3cr3t kv-value" {
			t.Errorf("unix socket: %s %q", resp.Status, body)
		}
	}
	for socket, want := range map[string]string{HealthWorkerName: "ok\n", service: "hello world s3cr3t kv-value"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", got[socket]))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("%s: %s %q, want 200 %q (stderr %s)", socket, resp.Status, body, want, stderr.String())
		}
	}
	// The KV request carried the account's credential.
	kvHdr := <-podAPI
	if kvHdr.Get(workerd.KVHeader) != account+"/0123456789abcdef0123456789abcdef" || kvHdr.Get(workerd.AuthHeader) != "cred-of-"+account {
		t.Errorf("KV request headers %v", kvHdr)
	}
	// The traced twin's events reach the collector with the account and
	// its credential.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", got[service+workerd.TracedSuffix]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.After(20 * time.Second)
	for {
		var h http.Header
		select {
		case h = <-podAPI:
		case <-deadline:
			t.Fatalf("no trace items posted; stderr:\n%s", stderr.String())
		}
		if !strings.HasPrefix(h.Get("x-test-request"), "POST "+workerd.TailPath) {
			continue
		}
		if h.Get(workerd.AccountHeader) != account || h.Get(workerd.AuthHeader) != "cred-of-"+account || h.Get(workerd.TailHeader) != service {
			t.Errorf("collector request headers %v", h)
		}
		break
	}

	// Cron triggers: the trigger Worker calls a version's scheduled handler
	// and answers workerd's outcome; a version the pod does not run is a
	// 404 marked for the scheduler's retry elsewhere.
	scheduled := func(version, cron string, traced bool) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", got[workerd.TriggerWorkerName], workerd.ScheduledPath), nil)
		req.Header.Set(workerd.LoaderVersionHeader, version)
		req.Header.Set(workerd.ScheduledCronHeader, cron)
		req.Header.Set(workerd.ScheduledTimeHeader, "1767225600000")
		if cron != "no-credential" {
			req.Header.Set(workerd.AuthHeader, "cred-of-"+account)
		}
		if traced {
			req.Header.Set(workerd.LoaderTraceHeader, "hello")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body), resp.Header.Get(workerd.LoaderFailedHeader)
	}
	for _, tc := range []struct {
		version, cron string
		traced        bool
		status        int
		body, failed  string
	}{
		{good.Spec.VersionID, "*/5 * * * *", false, 200, `{"outcome":"ok","noRetry":false}`, ""},
		{good.Spec.VersionID, "boom", false, 200, `{"outcome":"exception","noRetry":false}`, ""},
		{broken.Spec.VersionID, "* * * * *", false, 404, "", "1"},
		{"99999999-0000-4000-8000-000000000009", "* * * * *", false, 404, "", "1"},
		{good.Spec.VersionID, "no-credential", false, 403, "", ""}, // a client of another pod
	} {
		status, body, failed := scheduled(tc.version, tc.cron, tc.traced)
		if status != tc.status || (tc.body != "" && body != tc.body) || failed != tc.failed {
			t.Errorf("scheduled %s %q: %d %q (failed header %q), want %d %q (%q)\nstderr %s", tc.version, tc.cron, status, body, failed, tc.status, tc.body, tc.failed, stderr.String())
		}
	}
	// A traced run goes to the twin: its trace event, with the cron, and
	// the handler's console.log reach the collector.
	if status, body, _ := scheduled(good.Spec.VersionID, "7 * * * *", true); status != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("traced scheduled: %d %s", status, body)
	}
	deadline = time.After(20 * time.Second)
	for {
		var h http.Header
		select {
		case h = <-podAPI:
		case <-deadline:
			t.Fatalf("no trace of the scheduled run posted; stderr:\n%s", stderr.String())
		}
		if strings.HasPrefix(h.Get("x-test-request"), "POST "+workerd.TailPath) && h.Get("x-test-body-cron") == "7 * * * *" {
			break
		}
	}
}
