// Package kubelet runs the upstream kubelet inside the octo daemon and waits
// for the node to report Ready.
package kubelet

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	kubeletpkg "k8s.io/kubernetes/pkg/kubelet"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	podconfig "k8s.io/kubernetes/pkg/kubelet/config"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"
	kubeletutil "k8s.io/kubernetes/pkg/kubelet/util"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/pki"
)

// HealthzPort is the kubelet's loopback healthz port.
const HealthzPort = 10248

// Kubelet is the kubelet component.
type Kubelet struct {
	// HoldPods, when set, holds the node's pods back: the kubelet starts,
	// registers its node and reports it Ready, and takes the pods the API
	// server binds to it once HoldPods returns nil. Set it before Start.
	HoldPods func(context.Context) error

	cfg     config.Config
	pki     *pki.PKI
	started time.Time
	cancel  context.CancelFunc
	done    chan error
}

// New returns the kubelet of cfg.
func New(cfg config.Config, p *pki.PKI) *Kubelet { return &Kubelet{cfg: cfg, pki: p} }

// MaxPods is the node's pod capacity: the addresses of config.NodePodCIDR
// (a /24) less the bridge, network and broadcast addresses, a few spare.
// The kubelet's default of 110 would cap an account at ~110 bundles.
const MaxPods = 250

// Name implements embed.Component.
func (k *Kubelet) Name() string { return "kubelet" }

// ConfigPath is where the KubeletConfiguration is written.
func (k *Kubelet) ConfigPath() string { return k.cfg.Path("kubelet.yaml") }

// Configuration renders the KubeletConfiguration: loopback listeners,
// cgroupfs (cgroup v1 hosts), containerd in the run dir, the daemon's
// CoreDNS for the pods' DNS, eviction thresholds low enough for a laptop
// disk, and image GC off. The node's status is computed four times a
// second (a read of the node; posted only when it changes): at a warm
// start the kubelet's first post comes before its first look at the
// containers and says NotReady, and the default of 10 s then held `octo
// up` back as long (1 s: up to a second). The kubelet makes no iptables
// chains: its martian-packet rule for route_localnet is also kube-proxy's
// (iptables mode, which sets route_localnet), and its hint chain is for
// components octo does not run; the ~10 iptables runs took 0.5–0.7 s of
// the kubelet's start, before its first pod.
func (k *Kubelet) Configuration() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: %[1]s
healthzPort: %[3]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[5]s
failSwapOn: false
resolvConf: /etc/resolv.conf
clusterDNS: [%[9]s]
clusterDomain: %[10]s
podLogsDir: %[6]q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {nodefs.available: "1%%", imagefs.available: "1%%", memory.available: "100Mi"}
podCIDR: %[7]s
maxPods: %[8]d
protectKernelDefaults: false
nodeStatusReportFrequency: 1m0s
nodeStatusUpdateFrequency: 250ms
makeIPTablesUtilChains: false
`, config.Host, k.cfg.KubeletPort, HealthzPort, k.pki.Path("ca.crt"), k.cfg.ContainerdSocket(),
		k.cfg.Path("pod-logs"), config.NodePodCIDR, MaxPods, config.ClusterDNS, config.ClusterDomain)
}

// Start writes the configuration and runs the kubelet in a goroutine. It does
// not use the kubelet's cobra command, which would take over SIGTERM.
func (k *Kubelet) Start(ctx context.Context) error {
	k.started = time.Now().Add(-time.Second)
	if err := config.WriteFileAtomic(k.ConfigPath(), []byte(k.Configuration()), 0o600); err != nil {
		return err
	}
	for _, d := range []string{k.cfg.Path("kubelet"), k.cfg.Path("pod-logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, k.ConfigPath())
	if err != nil {
		return fmt.Errorf("config loader: %w", err)
	}
	kc, err := loader.Load(ctx)
	if err != nil {
		return fmt.Errorf("load %s: %w", k.ConfigPath(), err)
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(kc.FeatureGates); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
		return fmt.Errorf("validate configuration: %w", err)
	}
	kc.TLSCertFile, kc.TLSPrivateKeyFile = k.pki.Path(pki.ServingName+".crt"), k.pki.Path(pki.ServingName+".key")
	flags := kubeletoptions.NewKubeletFlags()
	flags.KubeConfig = k.pki.KubeconfigPath("kubelet")
	flags.RootDirectory = k.cfg.KubeletDir()
	flags.CertDirectory = k.cfg.Path("kubelet", "pki")
	flags.HostnameOverride = k.cfg.NodeName
	flags.NodeIP = k.cfg.NodeIP
	flags.KubeletConfigFile = k.ConfigPath()
	if err := kubeletoptions.ValidateKubeletFlags(flags); err != nil {
		return fmt.Errorf("validate flags: %w", err)
	}
	server := &kubeletoptions.KubeletServer{KubeletFlags: *flags, KubeletConfiguration: *kc}
	deps, err := kubeletapp.UnsecuredDependencies(ctx, server, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("dependencies: %w", err)
	}
	if err := k.clients(kc, deps); err != nil {
		return err
	}
	if err := k.preRegister(ctx, deps.KubeClient); err != nil {
		return err
	}
	ctx, k.cancel = context.WithCancel(ctx)
	k.recorder(ctx, deps)
	if k.HoldPods != nil {
		k.heldPodSource(ctx, deps)
	}
	k.done = make(chan error, 1)
	go func() { k.done <- kubeletapp.Run(ctx, server, deps, utilfeature.DefaultFeatureGate) }()
	return nil
}

// preRegister creates the node's Node object, with the kubelet's own
// credentials, labels and InternalIP, unless it exists. kube-proxy waits for
// the node's addresses and looks once a second: at a cold start it waited up
// to a second after the kubelet's registration. The kubelet takes the object
// over when it registers (status, labels). A pod scheduled before the
// kubelet runs waits for it, as on any node that is not Ready yet.
func (k *Kubelet) preRegister(ctx context.Context, cs kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := cs.CoreV1().Nodes().Create(ctx, InitialNode(k.cfg.NodeName, k.cfg.NodeIP), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", k.cfg.NodeName, err)
	}
	return nil
}

// heartbeatTimeout bounds the kubelet's lease renewals and node status
// posts: the kubelet's own 10 s default (its nodeStatusUpdateFrequency).
const heartbeatTimeout = 10 * time.Second

// clients gives deps the kubelet's API clients, made as the kubelet makes
// them (its content type, its API and event rates) but for the heartbeat's
// timeout. The kubelet times a heartbeat out after nodeStatusUpdateFrequency,
// 250 ms here so that the node turns Ready soon after it starts; an API
// server busy on two cores often takes longer, the node's lease then went
// unrenewed, and the node controller marks a node whose lease runs out
// NotReady with all of its pods.
func (k *Kubelet) clients(kc *kubeletconfig.KubeletConfiguration, deps *kubeletpkg.Dependencies) error {
	rc, err := clientcmd.BuildConfigFromFlags("", k.pki.KubeconfigPath("kubelet"))
	if err != nil {
		return fmt.Errorf("kubelet kubeconfig: %w", err)
	}
	rc.ContentType = kc.ContentType
	if kc.ContentType == runtime.ContentTypeProtobuf {
		rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	api, events, heartbeat := *rc, *rc, *rc
	api.QPS, api.Burst = float32(kc.KubeAPIQPS), int(kc.KubeAPIBurst)
	events.QPS, events.Burst = float32(kc.EventRecordQPS), int(kc.EventBurst)
	heartbeat.QPS, heartbeat.Timeout = -1, heartbeatTimeout
	if deps.KubeClient, err = kubernetes.NewForConfig(&api); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if deps.EventClient, err = typedcorev1.NewForConfig(&events); err != nil {
		return fmt.Errorf("event client: %w", err)
	}
	if deps.HeartbeatClient, err = kubernetes.NewForConfig(&heartbeat); err != nil {
		return fmt.Errorf("heartbeat client: %w", err)
	}
	return nil
}

// recorder gives deps the kubelet's event recorder, made as the kubelet
// makes it, but dropping the events recorded once ctx is done (untilDone).
// The held pod source needs it before the kubelet would make it.
func (k *Kubelet) recorder(ctx context.Context, deps *kubeletpkg.Dependencies) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	deps.Recorder = untilDone{ctx: ctx,
		EventRecorder: b.NewRecorder(legacyscheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})}
	b.StartStructuredLogging(3)
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: deps.EventClient.Events("")})
}

// heldPodSource gives the kubelet the API server's pods of its node, as the
// kubelet's own pod source does, once HoldPods returns nil.
func (k *Kubelet) heldPodSource(ctx context.Context, deps *kubeletpkg.Dependencies) {
	if deps.PodStartupLatencyTracker == nil {
		deps.PodStartupLatencyTracker = kubeletutil.NewPodStartupLatencyTracker()
	}
	deps.PodConfig = podconfig.NewPodConfig(podconfig.PodConfigNotificationIncremental, deps.Recorder, deps.PodStartupLatencyTracker)
	updates := deps.PodConfig.Channel(ctx, kubetypes.ApiserverSource)
	go func() {
		if err := k.HoldPods(ctx); err != nil {
			return // stopping
		}
		// The node has long been registered and Ready by then: no
		// need to wait for the kubelet's view of it, as its own source
		// does at its start.
		podconfig.NewSourceApiserver(deps.KubeClient, types.NodeName(k.cfg.NodeName), func() bool { return true }, updates)
	}()
}

// InitialNode is the Node preRegister creates: the labels and the
// addresses the kubelet gives its node.
func InitialNode(name, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelOSStable: goruntime.GOOS, corev1.LabelArchStable: goruntime.GOARCH,
		}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name},
		}},
	}
}

// untilDone is an event recorder that drops events once ctx is done: the
// kubelet goes on recording while it stops (its pods' containers ending),
// and the broadcaster, stopped with ctx, logged each of those events as an
// error (thousands at each `octo down`).
type untilDone struct {
	ctx context.Context
	record.EventRecorder
}

// Event implements record.EventRecorder.
func (r untilDone) Event(object runtime.Object, eventtype, reason, message string) {
	if r.ctx.Err() == nil {
		r.EventRecorder.Event(object, eventtype, reason, message)
	}
}

// Eventf implements record.EventRecorder.
func (r untilDone) Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if r.ctx.Err() == nil {
		r.EventRecorder.Eventf(object, eventtype, reason, messageFmt, args...)
	}
}

// AnnotatedEventf implements record.EventRecorder.
func (r untilDone) AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	if r.ctx.Err() == nil {
		r.EventRecorder.AnnotatedEventf(object, annotations, eventtype, reason, messageFmt, args...)
	}
}

// Ready waits until the node reports Ready with a heartbeat newer than this
// start: the Ready condition stored by a previous run is stale.
func (k *Kubelet) Ready(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", k.pki.KubeconfigPath("admin"))
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for {
		select {
		case err := <-k.done:
			k.done <- err
			return fmt.Errorf("exited before the node was Ready: %v", err)
		default:
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err == nil && NodeReadySince(node, k.started) {
			return nil
		}
		rv := ""
		if err == nil {
			rv = node.ResourceVersion
		}
		if err := k.nodeChange(ctx, cs, rv); err != nil {
			return fmt.Errorf("node %s not Ready: %w", k.cfg.NodeName, err)
		}
	}
}

// nodeChange waits until the node changes after resource version rv (at
// once when it says Ready, not a poll later), the kubelet exits, or a
// short while passes (rv empty: the node could not be read, or the watch
// could not start).
func (k *Kubelet) nodeChange(ctx context.Context, cs kubernetes.Interface, rv string) error {
	retry := time.After(200 * time.Millisecond)
	var events <-chan watch.Event
	if rv != "" {
		timeout := int64(10)
		w, err := cs.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: rv, TimeoutSeconds: &timeout,
			FieldSelector: fields.OneTermEqualSelector("metadata.name", k.cfg.NodeName).String()})
		if err == nil {
			defer w.Stop()
			events, retry = w.ResultChan(), nil
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-k.done:
		k.done <- err
	case <-events:
	case <-retry:
	}
	return nil
}

// NodeReadySince reports whether node is Ready with a heartbeat at or after t.
func NodeReadySince(node *corev1.Node, t time.Time) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(t.Truncate(time.Second))
		}
	}
	return false
}

// Stop cancels the kubelet's context. Running containers are left to the
// teardown that follows the daemon's exit.
func (k *Kubelet) Stop(context.Context) error {
	if k.cancel != nil {
		k.cancel()
	}
	return nil
}
