package podapi

// A real workerd drives the R2 protocol: an r2Bucket binding bound to an
// external service (this package's handler) with the x-octo-r2 and
// x-octo-auth headers injected, as octo's builder writes it.

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/store/storetest"
	"github.com/octohq/octo/internal/workerd"
	"github.com/octohq/octo/internal/workerd/workerdtest"
)

const r2WorkerJS = `
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const names = (l) => l.objects.map((o) => o.key);
export default {
  async fetch(req, env) {
    const B = env.BUCKET;
    const out = {};
    const put = await B.put("dir/a.txt", "hello world", {
      httpMetadata: { contentType: "text/plain", cacheControl: "max-age=5", contentLanguage: "en",
        contentDisposition: "inline", contentEncoding: "identity", cacheExpiry: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) },
      customMetadata: { owner: "ann", "Mixed Key": "vålue ✓" },
    });
    out.put = { key: put.key, size: put.size, etag: put.etag, httpEtag: put.httpEtag,
      hasVersion: put.version.length > 0, recent: Math.abs(Date.now() - put.uploaded.getTime()) < 60000 };
    const got = await B.get("dir/a.txt");
    const hm = got.httpMetadata;
    out.get = { text: await got.text(), size: got.size, etag: got.etag, md5: hex(got.checksums.md5),
      http: { ct: hm.contentType, cc: hm.cacheControl, lang: hm.contentLanguage, cd: hm.contentDisposition,
        ce: hm.contentEncoding, exp: hm.cacheExpiry.toISOString() }, custom: got.customMetadata, range: got.range };
    const h = new Headers();
    got.writeHttpMetadata(h);
    out.headers = Object.fromEntries(h);
    const head = await B.head("dir/a.txt");
    out.head = { size: head.size, etag: head.etag, ct: head.httpMetadata.contentType, custom: head.customMetadata, body: "body" in head };
    out.missingGet = await B.get("nope");
    out.missingHead = await B.head("nope");

    out.ranges = {
      offset: await (await B.get("dir/a.txt", { range: { offset: 6 } })).text(),
      offsetLength: await (await B.get("dir/a.txt", { range: { offset: 0, length: 5 } })).text(),
      suffix: await (await B.get("dir/a.txt", { range: { suffix: 5 } })).text(),
      header: await (await B.get("dir/a.txt", { range: new Headers({ range: "bytes=2-4" }) })).text(),
    };
    const r = await B.get("dir/a.txt", { range: { offset: 6, length: 2 } });
    out.rangeEcho = r.range;
    await r.text();

    const later = new Date(Date.now() + 3600e3);
    const failed = await B.get("dir/a.txt", { onlyIf: { etagMatches: "nope" } });
    out.cond = {
      failedHasBody: "body" in failed,
      failedEtag: failed.etag === put.etag,
      matches: await (await B.get("dir/a.txt", { onlyIf: { etagMatches: put.etag } })).text(),
      noneMatchHasBody: "body" in (await B.get("dir/a.txt", { onlyIf: { etagDoesNotMatch: put.etag } })),
      afterFutureHasBody: "body" in (await B.get("dir/a.txt", { onlyIf: { uploadedAfter: later } })),
      beforeFuture: await (await B.get("dir/a.txt", { onlyIf: { uploadedBefore: later } })).text(),
      ifNoneMatchHeaderHasBody: "body" in (await B.get("dir/a.txt", { onlyIf: new Headers({ "if-none-match": '"' + put.etag + '"' }) })),
      putIfAbsent: await B.put("dir/a.txt", "clobbered", { onlyIf: { etagDoesNotMatch: "*" } }),
      putIfMatch: (await B.put("new.txt", "n", { onlyIf: { etagDoesNotMatch: "*" } }))?.key ?? null,
    };
    out.afterCond = await (await B.get("dir/a.txt")).text();

    for (const k of ["dir/b.txt", "dir/sub/c.txt", "top.txt"]) await B.put(k, k, { customMetadata: { k } });
    const all = await B.list();
    out.list = { keys: names(all), truncated: all.truncated, cursor: all.cursor ?? null };
    out.listPrefix = names(await B.list({ prefix: "dir/" }));
    const del = await B.list({ delimiter: "/" });
    out.listDelimiter = { keys: names(del), prefixes: del.delimitedPrefixes };
    const sub = await B.list({ prefix: "dir/", delimiter: "/" });
    out.listPrefixDelimiter = { keys: names(sub), prefixes: sub.delimitedPrefixes };
    out.listStartAfter = names(await B.list({ startAfter: "dir/sub/c.txt" }));
    const pages = [];
    let cursor;
    for (let i = 0; i < 5; i++) {
      const p = await B.list({ limit: 2, cursor });
      pages.push({ keys: names(p), truncated: p.truncated });
      if (!p.truncated) break;
      cursor = p.cursor;
    }
    out.pages = pages;
    const inc = await B.list({ prefix: "dir/", include: ["httpMetadata", "customMetadata"] });
    out.include = inc.objects.map((o) => [o.key, o.httpMetadata.contentType ?? null, o.customMetadata]);
    const plain = await B.list({ prefix: "top" });
    out.noInclude = [plain.objects[0].key, plain.objects[0].size, plain.objects[0].customMetadata ?? null];

    const mp = await B.createMultipartUpload("big.bin", { httpMetadata: { contentType: "application/x-big" }, customMetadata: { m: "1" } });
    const p1 = await mp.uploadPart(1, new Uint8Array(5 * 1024 * 1024).fill(97));
    const p2 = await mp.uploadPart(2, "tail");
    const done = await mp.complete([p1, p2]);
    const bigHead = await B.head("big.bin");
    out.multipart = { key: mp.key, size: done.size, twoParts: done.etag.endsWith("-2"),
      suffix: await (await B.get("big.bin", { range: { suffix: 6 } })).text(),
      ct: bigHead.httpMetadata.contentType, custom: bigHead.customMetadata };
    const mp2 = await B.createMultipartUpload("aborted");
    await mp2.uploadPart(1, "x");
    await mp2.abort();
    out.aborted = await B.head("aborted");
    try {
      await B.resumeMultipartUpload("aborted", mp2.uploadId).complete([{ partNumber: 1, etag: "x" }]);
      out.completeAborted = "no error";
    } catch (e) {
      out.completeAborted = e.message;
    }

    await B.delete("top.txt");
    await B.delete(["dir/b.txt", "dir/sub/c.txt", "never-there", "new.txt"]);
    out.afterDelete = names(await B.list());
    try {
      await B.put("k".repeat(1025), "x");
      out.longKey = "no error";
    } catch (e) {
      out.longKey = e.message;
    }
    return Response.json(out);
  },
};
`

func TestR2WithWorkerd(t *testing.T) {
	bin := workerdBinary(t)
	ctx := context.Background()
	acct := storetest.Account(t).ID
	r2 := store.NewR2(testBlobs, nil)
	if _, err := r2.CreateBucket(ctx, acct, "wd-bucket", ""); err != nil {
		t.Fatal(err)
	}
	addr, key := serveLoopback(t, Options{R2: r2})

	dir := t.TempDir()
	config := fmt.Sprintf(`using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "index.js", esModule = embed "index.js")],
      compatibilityDate = "2025-01-01",
      bindings = [(name = "BUCKET", r2Bucket = "r2svc")],
    )),
    (name = "r2svc", external = (address = %q, http = (injectRequestHeaders = [
      (name = %q, value = %q), (name = %q, value = %q)]))),
  ],
  sockets = [(name = "main", address = "127.0.0.1:0", http = (), service = "main")],
);
`, addr, workerd.R2Header, acct+"/wd-bucket", workerd.AuthHeader, key.Credential(acct))
	for name, content := range map[string]string{"config.capnp": config, "index.js": r2WorkerJS} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, stderr := workerdtest.Serve(t, bin, filepath.Join(dir, "config.capnp"), "main", nil)
	client := &http.Client{Timeout: 60 * time.Second}
	res, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", p))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s\nstderr: %s", res.Status, body, stderr())
	}

	etag := fmt.Sprintf("%x", md5.Sum([]byte("hello world")))
	custom := map[string]any{"owner": "ann", "Mixed Key": "vålue ✓"}
	want := map[string]any{
		"put": map[string]any{"key": "dir/a.txt", "size": 11.0, "etag": etag, "httpEtag": `"` + etag + `"`, "hasVersion": true, "recent": true},
		"get": map[string]any{"text": "hello world", "size": 11.0, "etag": etag, "md5": etag,
			"http":   map[string]any{"ct": "text/plain", "cc": "max-age=5", "lang": "en", "cd": "inline", "ce": "identity", "exp": "2030-01-02T03:04:05.000Z"},
			"custom": custom, "range": map[string]any{"offset": 0.0, "length": 11.0}},
		"headers": map[string]any{"content-type": "text/plain", "cache-control": "max-age=5", "content-language": "en",
			"content-disposition": "inline", "content-encoding": "identity", "expires": "Wed, 02 Jan 2030 03:04:05 GMT"},
		"head":        map[string]any{"size": 11.0, "etag": etag, "ct": "text/plain", "custom": custom, "body": false},
		"missingGet":  nil,
		"missingHead": nil,
		"ranges":      map[string]any{"offset": "world", "offsetLength": "hello", "suffix": "world", "header": "llo"},
		"rangeEcho":   map[string]any{"offset": 6.0, "length": 2.0},
		"cond": map[string]any{"failedHasBody": false, "failedEtag": true, "matches": "hello world", "noneMatchHasBody": false,
			"afterFutureHasBody": false, "beforeFuture": "hello world", "ifNoneMatchHeaderHasBody": false,
			"putIfAbsent": nil, "putIfMatch": "new.txt"},
		"afterCond":           "hello world",
		"list":                map[string]any{"keys": []any{"dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "new.txt", "top.txt"}, "truncated": false, "cursor": nil},
		"listPrefix":          []any{"dir/a.txt", "dir/b.txt", "dir/sub/c.txt"},
		"listDelimiter":       map[string]any{"keys": []any{"new.txt", "top.txt"}, "prefixes": []any{"dir/"}},
		"listPrefixDelimiter": map[string]any{"keys": []any{"dir/a.txt", "dir/b.txt"}, "prefixes": []any{"dir/sub/"}},
		"listStartAfter":      []any{"new.txt", "top.txt"},
		"pages": []any{
			map[string]any{"keys": []any{"dir/a.txt", "dir/b.txt"}, "truncated": true},
			map[string]any{"keys": []any{"dir/sub/c.txt", "new.txt"}, "truncated": true},
			map[string]any{"keys": []any{"top.txt"}, "truncated": false},
		},
		"include": []any{
			[]any{"dir/a.txt", "text/plain", custom},
			[]any{"dir/b.txt", nil, map[string]any{"k": "dir/b.txt"}},
			[]any{"dir/sub/c.txt", nil, map[string]any{"k": "dir/sub/c.txt"}},
		},
		"noInclude": []any{"top.txt", 7.0, nil},
		"multipart": map[string]any{"key": "big.bin", "size": float64(5<<20 + 4), "twoParts": true, "suffix": "aatail",
			"ct": "application/x-big", "custom": map[string]any{"m": "1"}},
		"aborted":         nil,
		"completeAborted": "completeMultipartUpload: The specified multipart upload does not exist. (10024)",
		"afterDelete":     []any{"big.bin", "dir/a.txt"},
		"longKey":         "put: The specified object name is not valid. (10020)",
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			g, _ := json.Marshal(got[k])
			ws, _ := json.Marshal(w)
			t.Errorf("%s:\n got  %s\n want %s", k, g, ws)
		}
	}
	if t.Failed() {
		t.Logf("workerd stderr:\n%s", stderr())
	}
}
