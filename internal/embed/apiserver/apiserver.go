// Package apiserver runs the upstream kube-apiserver inside the octo daemon.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/kubeflags"
	"github.com/octohq/octo/internal/pki"
)

// APIServer is the kube-apiserver component.
type APIServer struct {
	cfg    config.Config
	pki    *pki.PKI
	etcd   string
	cancel context.CancelFunc
	done   chan error
	// started is when Start ran (see Bootstrapped).
	started time.Time

	mu sync.Mutex
	// warm is rolesBefore's answer once known: every HooksIfWarm gate
	// takes the start for the same kind.
	warm *bool
}

// New returns the API server of cfg, storing its state in the etcd endpoint
// etcdURL (kine's socket).
func New(cfg config.Config, p *pki.PKI, etcdURL string) *APIServer {
	return &APIServer{cfg: cfg, pki: p, etcd: etcdURL}
}

// Name implements embed.Component.
func (a *APIServer) Name() string { return "kube-apiserver" }

// Endpoint implements embed.Endpointer.
func (a *APIServer) Endpoint() string { return "https://" + config.Addr(a.cfg.APIServerPort) }

// Args are the kube-apiserver flags octo uses. The server binds loopback only
// and is advertised on the pod bridge address, where the pod network forwards
// to it, so pods reach it through the kubernetes Service.
func (a *APIServer) Args() []string {
	p := a.pki.Path
	issuer := "https://kubernetes.default.svc.cluster.local"
	return []string{
		"--etcd-servers=" + a.etcd,
		"--storage-backend=etcd3",
		"--bind-address=" + config.Host,
		"--advertise-address=" + config.BridgeIP,
		"--secure-port=" + strconv.Itoa(a.cfg.APIServerPort),
		"--service-cluster-ip-range=" + config.ServiceCIDR,
		"--client-ca-file=" + p("ca.crt"),
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--kubelet-client-certificate=" + p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=Hostname,InternalIP",
		"--kubelet-port=" + strconv.Itoa(a.cfg.KubeletPort),
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--service-account-issuer=" + issuer,
		"--api-audiences=" + issuer,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--anonymous-auth=false",
		"--profiling=false",
		"--requestheader-client-ca-file=" + p("ca.crt"),
		"--requestheader-allowed-names=system:auth-proxy",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--event-ttl=1h",
	}
}

// Start parses the flags and runs the server in a goroutine.
func (a *APIServer) Start(ctx context.Context) error {
	a.started = time.Now()
	s := options.NewServerRunOptions()
	if _, err := kubeflags.Parse("kube-apiserver", s.Flags(), a.Args()); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	ctx, a.cancel = context.WithCancel(ctx)
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("complete options: %w", err)
	}
	if errs := completed.Validate(); len(errs) > 0 {
		return fmt.Errorf("validate options: %w", errors.Join(errs...))
	}
	a.done = make(chan error, 1)
	go func() { a.done <- app.Run(ctx, completed) }()
	return nil
}

// bootstrapChecks are the readiness checks of post-start hooks that write
// the cluster's default objects. The RBAC hook alone takes ~1.8 s at a cold
// start (it waits a second before its first try), and only clients that
// authorize through those default roles need them: see Bootstrapped.
var bootstrapChecks = []string{
	"poststarthook/rbac/bootstrap-roles",
	"poststarthook/scheduling/bootstrap-system-priority-classes",
}

// Ready waits until the server serves requests that need none of the
// cluster's default RBAC roles: /readyz without bootstrapChecks. The admin
// identity (system:masters) and the kubelet (the Node authorizer) work from
// then on.
func (a *APIServer) Ready(ctx context.Context) error {
	return a.waitReadyz(ctx, bootstrapChecks, false)
}

// Bootstrapped waits for the whole /readyz: the cluster's default roles
// and priority classes exist and every post-start hook is done. The
// controller-manager needs it: it gives up unless /healthz, which includes
// the hooks, passes within 10 s of its start.
func (a *APIServer) Bootstrapped(ctx context.Context) error {
	return a.waitReadyz(ctx, nil, false)
}

// RolesExist waits until the cluster's default roles exist, for the
// scheduler and kube-proxy, which authorize through them: at once when an
// earlier start wrote them (the hook only reconciles them then, which takes
// seconds while the pods of a warm start restart), else until the whole
// /readyz passes.
func (a *APIServer) RolesExist(ctx context.Context) error {
	return a.waitReadyz(ctx, nil, true)
}

// HooksIfWarm waits, at a warm start (the default roles exist from an
// earlier start), for the whole /readyz, and returns at once at a cold
// start. The post-start hooks are a chain of ~300 requests: alone they take
// ~1.5 s, under the load of a warm start with 1,000 Workers (pods
// restarting, caches of thousands of objects filling) 16–24 s. At a cold
// start there is no such load.
func (a *APIServer) HooksIfWarm(ctx context.Context) error {
	cs, err := a.adminClient()
	if err != nil {
		return err
	}
	for {
		if err := a.exited(); err != nil {
			return err
		}
		before, err := a.startedWarm(ctx, cs)
		switch {
		case err == nil && before:
			return a.Bootstrapped(ctx)
		case err == nil:
			return nil // cold
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("read the default roles: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startedWarm is rolesBefore, asked of the server once it answers.
func (a *APIServer) startedWarm(ctx context.Context, cs kubernetes.Interface) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.warm != nil {
		return *a.warm, nil
	}
	before, err := a.rolesBefore(ctx, cs)
	if err != nil {
		return false, err
	}
	a.warm = &before
	return before, nil
}

// lastBootstrapObject is among the last objects the RBAC hook writes (the
// namespaced role bindings come after the cluster-wide ones), and the
// scheduler needs it.
const lastBootstrapObject = "system::extension-apiserver-authentication-reader"

// rolesBefore reports whether the default roles existed before this server
// started (false while they do not exist yet).
func (a *APIServer) rolesBefore(ctx context.Context, cs kubernetes.Interface) (bool, error) {
	rb, err := cs.RbacV1().RoleBindings(metav1.NamespaceSystem).Get(ctx, lastBootstrapObject, metav1.GetOptions{})
	if objectNotFound(err, lastBootstrapObject) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return rb.CreationTimestamp.Time.Before(a.started.Truncate(time.Second)), nil
}

// objectNotFound reports whether err is the server's answer that the object
// name does not exist. A 404 of the path itself (plain text, which the
// client turns into a NotFound with an UnexpectedServerResponse cause) says
// nothing about the object: taken for a missing object at a warm start, it
// made octo take the start for a cold one, and octo was ready after 13.8 s
// instead of 8 (the kubelet started during the post-start hooks).
func objectNotFound(err error, name string) bool {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	if d == nil || d.Name != name {
		return false
	}
	for _, c := range d.Causes {
		if c.Type == metav1.CauseTypeUnexpectedServerResponse {
			return false
		}
	}
	return true
}

// exited returns an error once the server has exited, else nil.
func (a *APIServer) exited() error {
	select {
	case err := <-a.done:
		a.done <- err
		return fmt.Errorf("exited before ready: %w", err)
	default:
		return nil
	}
}

// waitReadyz polls /readyz, leaving out the checks named in exclude; with
// earlierRoles it also returns once rolesBefore.
func (a *APIServer) waitReadyz(ctx context.Context, exclude []string, earlierRoles bool) error {
	cs, err := a.adminClient()
	if err != nil {
		return err
	}
	var last error
	for {
		if err := a.exited(); err != nil {
			return err
		}
		if earlierRoles {
			if before, err := a.rolesBefore(ctx, cs); err == nil && before {
				return nil
			}
		}
		req := cs.Discovery().RESTClient().Get().AbsPath("/readyz")
		for _, check := range exclude {
			req = req.Param("exclude", check)
		}
		_, last = req.DoRaw(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", last)
		case <-time.After(readyzPoll):
		}
	}
}

// readyzPoll is how often waitReadyz asks /readyz: everything after the API
// server waits for it, and the poll's own cost is small.
const readyzPoll = 25 * time.Millisecond

// adminClient is a client of the server with the admin identity.
func (a *APIServer) adminClient() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", a.pki.KubeconfigPath("admin"))
	if err != nil {
		return nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	rc.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return cs, nil
}

// drainTimeout bounds the wait for the server's graceful shutdown: the
// in-process clients' watches keep it from returning promptly, and every
// client is about to stop anyway.
const drainTimeout = 3 * time.Second

// Stop cancels the server and waits briefly for it to drain.
func (a *APIServer) Stop(ctx context.Context) error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(drainTimeout):
	case <-ctx.Done():
	}
	return nil
}
