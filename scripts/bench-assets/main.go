// Command bench-assets measures static assets through octo's gateway and
// prints the figures recorded in docs/benchmarks.md: requests per second
// and latency of a small HTML file, a 100 KiB script and a conditional GET
// (304) from an assets-only Worker, beside a hello-world Worker through the
// same gateway, on the same machine and connections. It uploads the files
// as wrangler does (session, bucket upload, completion token).
// Run it as root with no other octo running: `go run ./scripts/bench-assets`.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"runtime"
	"strings"
	"time"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/scripts/internal/benchkit"
)

func main() {
	bin := flag.String("octo", "bin/octo", "octo binary")
	load := flag.Duration("load", 8*time.Second, "duration of each throughput run")
	conns := flag.Int("conns", 16, "concurrent connections")
	flag.Parse()

	b, down := benchkit.Up(*bin)
	defer down()
	a := b.Def
	b.PutBody(a, "hello", "hello")
	b.WaitBody(a, "hello", "hello", 2*time.Minute)

	html := "<!doctype html><title>bench</title><h1>octo</h1>\n"
	js := strings.Repeat("console.log('octo static assets benchmark');\n", 100<<10/45)
	files := map[string]string{"/index.html": html, "/app.js": js}
	api := func(method, path, token, ctype string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, fmt.Sprintf("http://%s%s/accounts/%s%s", config.Addr(b.Cfg.EdgePort), cfapi.BasePath, a.ID, path), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %s %s", method, path, resp.Status, out)
		}
		return resp.StatusCode, out
	}
	// The session, with made-up hashes (octo does not recompute them).
	manifest := map[string]map[string]any{}
	hashes := map[string]string{}
	for i, p := range []string{"/index.html", "/app.js"} {
		h := fmt.Sprintf("%032x", i+1)
		manifest[p] = map[string]any{"hash": h, "size": len(files[p])}
		hashes[h] = p
	}
	body, _ := json.Marshal(map[string]any{"manifest": manifest})
	_, out := api(http.MethodPost, "/workers/scripts/site/assets-upload-session", b.ID.Token, "application/json", body)
	var sess struct {
		Result struct {
			JWT     string     `json:"jwt"`
			Buckets [][]string `json:"buckets"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &sess); err != nil {
		b.Fatalf("session: %v", err)
	}
	completion := sess.Result.JWT
	for _, bucket := range sess.Result.Buckets {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, h := range bucket {
			hdr := textproto.MIMEHeader{}
			hdr.Set("Content-Disposition", `form-data; name="`+h+`"; filename="`+h+`"`)
			hdr.Set("Content-Type", map[string]string{"/index.html": "text/html", "/app.js": "text/javascript"}[hashes[h]])
			pw, _ := mw.CreatePart(hdr)
			_, _ = io.WriteString(pw, base64.StdEncoding.EncodeToString([]byte(files[hashes[h]])))
		}
		_ = mw.Close()
		_, out := api(http.MethodPost, "/workers/assets/upload?base64=true", sess.Result.JWT, mw.FormDataContentType(), buf.Bytes())
		var done struct {
			Result struct {
				JWT string `json:"jwt"`
			} `json:"result"`
		}
		if json.Unmarshal(out, &done) == nil && done.Result.JWT != "" {
			completion = done.Result.JWT
		}
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	meta, _ := mw.CreateFormField("metadata")
	_, _ = fmt.Fprintf(meta, `{"assets":{"jwt":%q,"config":{"not_found_handling":"single-page-application"}},"compatibility_date":"2025-01-01"}`, completion)
	_ = mw.Close()
	api(http.MethodPut, "/workers/scripts/site", b.ID.Token, mw.FormDataContentType(), form.Bytes())
	b.WaitBody(a, "site", html, time.Minute)

	url := "http://" + config.Addr(b.Cfg.EdgePort)
	fmt.Printf("machine: %d cores; %d connections, %s per run\n", numCPU(), *conns, *load)
	fmt.Printf("%-38s %10s %9s %9s %7s\n", "path", "req/s", "p50", "p99", "failed")
	for _, run := range []struct{ name, path, host string }{
		{"Worker (hello) through the gateway", "/", b.Host(a, "hello")},
		{"asset: index.html (53 B)", "/", b.Host(a, "site")},
		{"asset: app.js (100 KiB)", "/app.js", b.Host(a, "site")},
		{"asset: SPA fallback (/deep/link)", "/deep/link", b.Host(a, "site")},
	} {
		r := benchkit.Load(*load, *conns, url+run.path, run.host)
		fmt.Printf("%-38s %10.0f %9s %9s %7d\n", run.name, r.RPS, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Failed)
	}
	log.SetFlags(0)
}

func numCPU() int { return runtime.NumCPU() }
