package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"

	"github.com/octohq/octo/internal/edge"
	"github.com/octohq/octo/internal/metrics"
)

// GatewayMetrics is where the gateway's request metrics go.
type GatewayMetrics struct {
	// File keeps the minutes across restarts (metrics.Recorder.Save every
	// MetricsSaveInterval and at stop); empty: they end with the process.
	File string
	// Socket serves them on a unix socket (mode 0600): /metrics in
	// Prometheus' text format and /series as JSON (MetricsClient). Empty:
	// not served.
	Socket string
}

// MetricsSaveInterval is how often the gateway saves its minutes.
const MetricsSaveInterval = 30 * time.Second

// startMetrics serves rec on m.Socket and keeps saving it to m.File until
// ctx ends; stop saves it a last time and closes the socket. The minutes
// m.File holds from the last run are added once ready is closed, or at the
// first request for a series, which waits for them: with 1,000 Workers the
// file is ~13 MB, 0.25–1 s of decoding, which the gateway does once its
// cache has synced, after a warm start's busiest seconds, unless the
// dashboard asks before. No save comes before them (it would drop them),
// and none at all when the gateway stops before they were read.
func startMetrics(ctx context.Context, m GatewayMetrics, rec *metrics.Recorder, log *slog.Logger, ready <-chan struct{}) (stop func(), err error) {
	done := make(chan struct{})
	loaded := make(chan struct{})
	asked := make(chan struct{})
	ask := sync.OnceFunc(func() { close(asked) })
	read := false // the last run's minutes were read (set before loaded closes)
	go func() {
		defer close(loaded)
		select {
		case <-ready:
		case <-asked:
		case <-done:
		case <-ctx.Done():
		}
		select {
		case <-ready: // also when stopped since
		case <-asked:
		default:
			return
		}
		if m.File != "" {
			if err := rec.Load(m.File); err != nil {
				log.Warn("request metrics of the previous run lost", "err", err)
			}
		}
		read = true
	}()
	save := func() {
		<-loaded
		if m.File == "" || !read {
			return
		}
		if err := rec.Save(m.File); err != nil {
			log.Warn("save request metrics", "err", err)
		}
	}
	go func() {
		t := time.NewTicker(MetricsSaveInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				save()
			}
		}
	}()
	var srv *http.Server
	if m.Socket != "" {
		ln, err := edge.ListenUnix(m.Socket)
		if err != nil {
			close(done)
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.Collector{R: rec})
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /series", func(w http.ResponseWriter, r *http.Request) {
			ask()
			select {
			case <-loaded:
			case <-r.Context().Done():
				return
			}
			q := r.URL.Query()
			from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
			to, _ := strconv.ParseInt(q.Get("to"), 10, 64)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rec.Range(q.Get("account"), q.Get("script"), time.Unix(from, 0), time.Unix(to, 0)))
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("gateway metrics socket", "err", err)
			}
		}()
	}
	return func() {
		close(done)
		if srv != nil {
			_ = srv.Close()
		}
		save()
	}, nil
}

// MetricsClient reads the gateway's request metrics from its socket
// (GatewayMetrics.Socket).
type MetricsClient struct {
	http *http.Client
}

// NewMetricsClient is a client of the gateway's metrics socket.
func NewMetricsClient(socket string) *MetricsClient {
	return &MetricsClient{http: edge.UnixClient(socket, 5*time.Second)}
}

// Series returns a script's minutes from from to to (metrics.Recorder.Range).
func (c *MetricsClient) Series(ctx context.Context, account, script string, from, to time.Time) ([]metrics.Point, error) {
	q := url.Values{"account": {account}, "script": {script},
		"from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://gateway/series?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway metrics: %s", resp.Status)
	}
	var out []metrics.Point
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	return out, nil
}

// Gather implements prometheus.Gatherer: the gateway's metric families.
func (c *MetricsClient) Gather() ([]*dto.MetricFamily, error) {
	resp, err := c.http.Get("http://gateway/metrics")
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	return out, nil
}

// slogPrinter lets promhttp log a failed gather through slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// podRestarts is octo_bundle_container_restarts: the container restarts of
// each bundle's pods (a Worker that crashes or is killed for a runaway
// request), read from the cluster at every scrape.
type podRestarts struct {
	c client.Reader
}

var podRestartsDesc = prometheus.NewDesc("octo_bundle_container_restarts",
	"Container restarts of the pods of a WorkerBundle (workerd crashed, ran out of memory or was ended for a runaway request).",
	[]string{"namespace", "bundle"}, nil)

// Describe implements prometheus.Collector.
func (p podRestarts) Describe(ch chan<- *prometheus.Desc) { ch <- podRestartsDesc }

// Collect implements prometheus.Collector.
func (p podRestarts) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := p.c.List(ctx, &pods, client.HasLabels{apiv1.LabelBundle}); err != nil {
		ch <- prometheus.NewInvalidMetric(podRestartsDesc, err)
		return
	}
	sums := map[[2]string]int32{}
	for _, pod := range pods.Items {
		k := [2]string{pod.Namespace, pod.Labels[apiv1.LabelBundle]}
		sums[k] += 0 // a bundle without restarts shows 0
		for _, cs := range pod.Status.ContainerStatuses {
			sums[k] += cs.RestartCount
		}
	}
	for k, n := range sums {
		ch <- prometheus.MustNewConstMetric(podRestartsDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// queueGatherer is the work queues' families (workqueue_*) of the
// in-process Kubernetes registry: the embedded controller-manager installs
// the process-wide work queue metrics first, so octo's operators' queues
// are counted there too.
type queueGatherer struct{ g prometheus.Gatherer }

// Gather implements prometheus.Gatherer.
func (q queueGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := q.g.Gather()
	out := fams[:0]
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "workqueue_") {
			out = append(out, f)
		}
	}
	return out, err
}
