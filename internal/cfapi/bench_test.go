package cfapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// BenchmarkUploadHelloWorld measures `wrangler deploy` of a hello-world ES
// module: the multipart PUT …/scripts/:name through the echo handler, with
// controller-runtime's fake client as the cluster and the real embedded S3
// (versitygw) as the blob store. Besides ns/op it reports the p50, p95 and
// p99 latency of single requests.
//
//   - first-deploy: every iteration deploys a new script (release, version,
//     two S3 objects, deployment);
//   - redeploy: every iteration deploys the same script again (the version
//     list and the deployment history grow, up to 100 deployments).
func BenchmarkUploadHelloWorld(b *testing.B) {
	for _, mode := range []string{"first-deploy", "redeploy"} {
		b.Run(mode, func(b *testing.B) {
			env := newScriptsEnvWith(b, false)
			base := BasePath + "/accounts/" + env.acct.ID + "/workers/scripts/"
			durations := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				script := "hello"
				if mode == "first-deploy" {
					script = fmt.Sprintf("hello-%d", i)
				}
				body, ct := wranglerForm(esmMeta(), esm("index.js", helloESM))
				req := httptest.NewRequest(http.MethodPut, base+script+"?excludeScript=true&bindings_inherit=strict", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+scToken)
				req.Header.Set("Content-Type", ct)
				rec := httptest.NewRecorder()
				b.StartTimer()

				start := time.Now()
				env.e.ServeHTTP(rec, req)
				durations = append(durations, time.Since(start))

				if rec.Code != http.StatusOK {
					b.Fatalf("PUT %s = %d %s", script, rec.Code, rec.Body.String())
				}
			}
			b.StopTimer()
			slices.Sort(durations)
			pct := func(p float64) float64 {
				i := int(float64(len(durations))*p+0.5) - 1
				i = max(0, min(i, len(durations)-1))
				return float64(durations[i].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
