package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// buildDuration is octo_bundle_build_duration_seconds: how long building a
// bundle's image took, by outcome. It lives in controller-runtime's
// registry beside the work queues' depths and the reconcile durations.
var buildDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "octo_bundle_build_duration_seconds",
	Help:    "Time the JobBuilder took to build and push a bundle image, by outcome (succeeded, failed).",
	Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
}, []string{"outcome"})

// rolloutDuration is octo_bundle_rollout_duration_seconds: from a bundle's
// image being built to every pod of its Deployment serving it.
var rolloutDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "octo_bundle_rollout_duration_seconds",
	Help:    "Time from a bundle image's build finishing to every pod of its Deployment serving it.",
	Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 300},
})

func init() {
	ctrlmetrics.Registry.MustRegister(buildDuration, rolloutDuration)
}
