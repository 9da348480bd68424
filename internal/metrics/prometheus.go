package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Descriptions of the per-Worker series, by Prometheus conventions. The
// labels are bounded by the Recorder's series (DefaultMaxSeries).
var (
	requestsDesc = prometheus.NewDesc("octo_worker_requests_total",
		"Requests answered for a Worker version through the gateway, by status class (2xx, 5xx...).",
		[]string{"account", "script", "version", "status_class"}, nil)
	durationDesc = prometheus.NewDesc("octo_worker_request_duration_seconds",
		"Time from the gateway receiving a Worker's request to the end of its response (WebSockets not included).",
		[]string{"account", "script", "version"}, nil)
	cpuDesc = prometheus.NewDesc("octo_bundle_cpu_seconds_total",
		"CPU time spent by the pods of a WorkerBundle (the Workers it runs share it), from the kubelet's stats.",
		[]string{"account", "bundle"}, nil)
	memoryDesc = prometheus.NewDesc("octo_bundle_memory_working_set_bytes",
		"Working-set memory of the pods of a WorkerBundle at the latest sample, from the kubelet's stats.",
		[]string{"account", "bundle"}, nil)
)

// Collector exposes a Recorder's totals since it was made to Prometheus:
// octo_worker_requests_total and octo_worker_request_duration_seconds.
type Collector struct{ R *Recorder }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- durationDesc
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	c.R.each(func(k Key, t Counts) {
		for i, n := range t.Status {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n),
					k.Account, k.Script, k.Version, strconv.Itoa(i+1)+"xx")
			}
		}
		buckets := make(map[float64]uint64, len(LatencyBounds))
		var cum uint64
		for i, bound := range LatencyBounds {
			cum += t.Latency[i]
			buckets[bound/1000] = cum
		}
		ch <- prometheus.MustNewConstHistogram(durationDesc, t.Requests, float64(t.DurationMicros)/1e6, buckets,
			k.Account, k.Script, k.Version)
	})
}

// UsageCollector exposes a Usage to Prometheus: octo_bundle_cpu_seconds_total
// (since the Usage was made) and octo_bundle_memory_working_set_bytes.
type UsageCollector struct{ U *Usage }

// Describe implements prometheus.Collector.
func (c UsageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cpuDesc
	ch <- memoryDesc
}

// Collect implements prometheus.Collector.
func (c UsageCollector) Collect(ch chan<- prometheus.Metric) {
	c.U.eachUsage(func(k UsageKey, cpu float64, memory uint64) {
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.CounterValue, cpu, k.Account, k.Bundle)
		ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(memory), k.Account, k.Bundle)
	})
}
