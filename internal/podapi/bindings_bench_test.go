package podapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

// benchWorker answers /d1 with one D1 query by primary key, /r2put by
// storing the request body under "obj", /r2get with that object.
const benchWorker = `export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path === "/d1") {
      const row = await env.DB.prepare("SELECT v FROM kv WHERE k = ?").bind("k42").first();
      return new Response(row.v);
    }
    if (path === "/r2put") {
      await env.BUCKET.put("obj", req.body);
      return new Response("ok");
    }
    const obj = await env.BUCKET.get("obj");
    return new Response(obj.body);
  },
};`

// benchBindings runs benchWorker in a real workerd with a D1 database of
// 1,000 rows and an R2 bucket behind the pod API, and returns its base URL.
func benchBindings(b *testing.B) string {
	bin := workerdBinary(b)
	ctx := context.Background()
	d1, d1Hdr := newD1(b)
	uuid := strings.TrimPrefix(d1Hdr, d1TestAccount+"/")
	stmts := []store.D1Statement{{SQL: "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"}}
	for i := range 1000 {
		stmts = append(stmts, store.D1Statement{SQL: "INSERT INTO kv VALUES (?, ?)", Params: []any{fmt.Sprintf("k%d", i), fmt.Sprintf("value %d", i)}})
	}
	if _, err := d1.Query(ctx, d1TestAccount, uuid, stmts); err != nil {
		b.Fatal(err)
	}
	acct := storetest.Account(b).ID
	r2 := store.NewR2(testBlobs, nil)
	if _, err := r2.CreateBucket(ctx, acct, "bench", ""); err != nil {
		b.Fatal(err)
	}
	addr, key := serveLoopback(b, Options{D1: d1, R2: r2})
	dir := b.TempDir()
	config := fmt.Sprintf(`using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "index.js", esModule = embed "index.js")],
      compatibilityDate = "2025-01-01",
      bindings = [
        (name = "DB", wrapped = (moduleName = "cloudflare-internal:d1-api", innerBindings = [(name = "fetcher", service = "d1")])),
        (name = "BUCKET", r2Bucket = "r2"),
      ],
    )),
    (name = "d1", external = (address = %[1]q, http = (injectRequestHeaders = [(name = %[2]q, value = %[3]q), (name = %[4]q, value = %[5]q)]))),
    (name = "r2", external = (address = %[1]q, http = (injectRequestHeaders = [(name = %[6]q, value = %[7]q), (name = %[4]q, value = %[8]q)]))),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);
`, addr, workerd.D1Header, d1Hdr, workerd.AuthHeader, key.Credential(d1TestAccount), workerd.R2Header, acct+"/bench", key.Credential(acct))
	for name, content := range map[string]string{"config.capnp": config, "index.js": benchWorker} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	port, _ := workerdtest.Serve(b, bin, filepath.Join(dir, "config.capnp"), "http", nil)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// BenchmarkBindings measures, through a real workerd and the pod API: one
// D1 query by primary key (the latency a Worker sees), and R2 puts and gets
// of 1 MiB objects (throughput in MB/s).
func BenchmarkBindings(b *testing.B) {
	base := benchBindings(b)
	call := func(b *testing.B, method, path string, body []byte, want int) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || (want > 0 && int(n) != want) {
			b.Fatalf("%s %s: %s, %d bytes", method, path, res.Status, n)
		}
	}
	obj := bytes.Repeat([]byte("octo r2 "), (1<<20)/8)
	b.Run("d1-query", func(b *testing.B) {
		for b.Loop() {
			call(b, http.MethodGet, "/d1", nil, len("value 42"))
		}
	})
	b.Run("r2-put-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		for b.Loop() {
			call(b, http.MethodPost, "/r2put", obj, 2)
		}
	})
	b.Run("r2-get-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		for b.Loop() {
			call(b, http.MethodGet, "/r2get", nil, len(obj))
		}
	})
}
