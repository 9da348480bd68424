package controller

import (
	"log/slog"

	"github.com/go-logr/logr"
	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/crds"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ManagerOptions are the manager options for octo's controllers inside the
// daemon: the scheme, logs to log (nil discards them), no metrics or probe
// listener, no leader election (one daemon), and a cache that holds only
// the Deployments and Services octo manages.
func ManagerOptions(log *slog.Logger) (ctrl.Options, error) {
	s, err := Scheme()
	if err != nil {
		return ctrl.Options{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	managed, err := labels.NewRequirement(apiv1.LabelBundle, selection.Exists, nil)
	if err != nil {
		return ctrl.Options{}, err
	}
	sel := labels.NewSelector().Add(*managed)
	return ctrl.Options{
		Scheme:                 s,
		Logger:                 logr.FromSlogHandler(log.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// octo's kinds are mapped from their CRDs, not from discovery:
		// the operators start right after they are installed.
		MapperProvider: crds.MapperFor,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: sel},
			&corev1.Service{}:    {Label: sel},
		}},
	}, nil
}
