package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/crds"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/tail"
)

// ClusterOptions starts, and waits for, a watch cache of what the gateway
// reads: WorkerAccounts, WorkerReleases, WorkerVersions, and only the pods
// labelled api.cf-worker/account. It returns Options with Accounts, Reader
// and Pods filled; the cache stops with ctx. Objects read from it are
// shared, not copied: the cache is for the gateway only.
func ClusterOptions(ctx context.Context, rc *rest.Config, scheme *runtime.Scheme, log *slog.Logger) (Options, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	req, err := labels.NewRequirement(apiv1.LabelAccount, selection.Exists, nil)
	if err != nil {
		return Options{}, err
	}
	shared := ptr.To(true)
	objs := []client.Object{&corev1.Pod{}, &apiv1.WorkerAccount{}, &apiv1.WorkerRelease{}, &apiv1.WorkerVersion{}}
	// octo's kinds are mapped from their CRDs, not discovery: the gateway
	// starts right after they are installed.
	mapper, hc, err := crds.ClusterMapper(rc)
	if err != nil {
		return Options{}, err
	}
	c, err := cache.New(rc, cache.Options{
		Scheme:           scheme,
		HTTPClient:       hc,
		Mapper:           mapper,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			objs[0]: {Label: labels.NewSelector().Add(*req), UnsafeDisableDeepCopy: shared},
			objs[1]: {UnsafeDisableDeepCopy: shared},
			objs[2]: {UnsafeDisableDeepCopy: shared},
			objs[3]: {UnsafeDisableDeepCopy: shared},
		},
	})
	if err != nil {
		return Options{}, fmt.Errorf("gateway cache: %w", err)
	}
	changes := &Changes{}
	for i, o := range objs {
		inf, err := c.GetInformer(ctx, o)
		if err != nil {
			return Options{}, fmt.Errorf("gateway cache: watch %T: %w", o, err)
		}
		count := changes.ReleasesChanged
		switch i {
		case 0:
			count = changes.PodsChanged
		case 1:
			continue // accounts: the gateway's own snapshot (AccountTTL)
		}
		if _, err := inf.AddEventHandler(handler(count)); err != nil {
			return Options{}, fmt.Errorf("gateway cache: watch %T: %w", o, err)
		}
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			log.Error("gateway cache stopped", "err", err)
		}
	}()
	if !c.WaitForCacheSync(ctx) {
		return Options{}, fmt.Errorf("gateway cache did not sync: %w", context.Cause(ctx))
	}
	return Options{Accounts: store.ClusterAccounts{Reader: c}, Reader: c, Pods: ReaderPods{Reader: c}, Changes: changes, Log: log}, nil
}

// TailResolver maps the workerd service names the builder gives workers,
// "<script>-<first 8 hex of the version id>" (or the whole id without
// hyphens), to their account, script and version, from the WorkerVersions
// in r (the Reader of ClusterOptions). Answers are remembered: versions are
// immutable.
func TailResolver(r client.Reader) tail.ResolveFunc {
	var (
		mu   sync.Mutex
		memo = map[string][3]string{}
	)
	return func(service string) (string, string, string, bool) {
		mu.Lock()
		m, ok := memo[service]
		mu.Unlock()
		if ok {
			return m[0], m[1], m[2], true
		}
		prefix := tail.VersionPrefixOfService(service)
		if prefix == "" {
			return "", "", "", false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var list apiv1.WorkerVersionList
		if err := r.List(ctx, &list); err != nil {
			return "", "", "", false
		}
		script := tail.ScriptOfService(service)
		for _, v := range list.Items {
			id := strings.ReplaceAll(v.Spec.VersionID, "-", "")
			if !strings.HasPrefix(id, prefix) || strings.Trim(strings.ReplaceAll(v.Spec.ScriptName, "_", "-"), "-") != script {
				continue
			}
			m = [3]string{v.Spec.AccountID, v.Spec.ScriptName, v.Spec.VersionID}
			mu.Lock()
			if len(memo) > 4096 {
				memo = map[string][3]string{}
			}
			memo[service] = m
			mu.Unlock()
			return m[0], m[1], m[2], true
		}
		return "", "", "", false
	}
}
