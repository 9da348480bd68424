package controller

import (
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// TestSetup registers the controllers with a manager (never started, so no
// API server is needed).
func TestSetup(t *testing.T) {
	opts, err := ManagerOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Cache.ByObject) != 2 {
		t.Errorf("cache options %+v", opts.Cache)
	}
	opts.Cache = cache.Options{} // per-object options need the API server's REST mapping
	mgr, err := ctrl.NewManager(&rest.Config{Host: "http://127.0.0.1:1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, Options{}); err == nil {
		t.Error("Setup without a builder succeeded")
	}
	if err := Setup(mgr, Options{Builder: &fakeBuilder{}, Registry: registry, PodHost: podHost}); err != nil {
		t.Fatal(err)
	}
}
