// Package config holds octo's settings: where its data lives, which loopback
// ports it listens on and the network ranges of the embedded cluster.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Defaults for a fresh data dir.
const (
	DefaultDataDir       = "/var/lib/octo"
	DefaultRunDir        = "/run/octo"
	DefaultEdgePort      = 8787
	DefaultRegistryPort  = 5050
	DefaultS3Port        = 9000
	DefaultAPIServerPort = 6443
	DefaultKubeletPort   = 10250

	// ClusterCIDR is the pod network; this node gets NodePodCIDR out of it.
	ClusterCIDR = "10.42.0.0/16"
	// NodePodCIDR is the single node's pod range, served by the cni0 bridge.
	NodePodCIDR = "10.42.0.0/24"
	// BridgeIP is the address of cni0, the pods' gateway. The API server is
	// advertised here so pods reach it through the kubernetes Service.
	BridgeIP = "10.42.0.1"
	// ServiceCIDR is the ClusterIP range.
	ServiceCIDR = "10.43.0.0/16"
	// KubernetesServiceIP is the ClusterIP of the default/kubernetes Service.
	KubernetesServiceIP = "10.43.0.1"
	// ClusterDNS is where pods send their DNS queries: the daemon's
	// CoreDNS listens on the bridge address (internal/embed/coredns).
	ClusterDNS = BridgeIP
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain = "cluster.local"
	// BridgeName is the Linux bridge the CNI plugin creates for pods.
	BridgeName = "cni0"
	// Host is the address every octo listener binds.
	Host = "127.0.0.1"
)

// Config is the settings of one octo instance. It is saved in the data dir by
// `octo up` so that later commands only need the data dir to find everything.
type Config struct {
	DataDir       string `json:"dataDir"`
	EdgePort      int    `json:"edgePort"`
	RegistryPort  int    `json:"registryPort"`
	S3Port        int    `json:"s3Port"`
	APIServerPort int    `json:"apiServerPort"`
	KubeletPort   int    `json:"kubeletPort"`
	// NodeName is the Kubernetes node name; it must resolve to 127.0.0.1.
	NodeName string `json:"nodeName"`
	// NodeIP is the node's InternalIP: the kubelet refuses a loopback address.
	NodeIP string `json:"nodeIP"`
	// MergeKubeconfig merges the cluster into ~/.kube/config as context "octo".
	MergeKubeconfig bool `json:"mergeKubeconfig"`
	// WorkersPerBundle bounds the scripts one WorkerBundle (one workerd
	// process) runs; 0 means the operators' default.
	WorkersPerBundle int `json:"workersPerBundle,omitempty"`
	// LogsRetentionDays is how many days the logs of the Workers that keep
	// them (Workers Logs) are kept; 0 means 3, Cloudflare's.
	LogsRetentionDays int `json:"logsRetentionDays,omitempty"`
	// BareCluster leaves octo's Workers platform out (the Cloudflare API,
	// dashboard, gateway, pod API and operators): the cluster, S3 and the
	// registry only, to install octo's chart (deploy/) into, as on any
	// other cluster.
	BareCluster bool `json:"bareCluster,omitempty"`
	// InsecureRegistries are registries (host:port) the node pulls from
	// over plain HTTP, as k3s's registries.yaml or kind's containerd
	// patches allow: e.g. an external registry the chart's operators push
	// to.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// Default returns the configuration for dataDir with default ports.
func Default(dataDir string) Config {
	return Config{
		DataDir:         dataDir,
		EdgePort:        DefaultEdgePort,
		RegistryPort:    DefaultRegistryPort,
		S3Port:          DefaultS3Port,
		APIServerPort:   DefaultAPIServerPort,
		KubeletPort:     DefaultKubeletPort,
		MergeKubeconfig: true,
	}
}

// DataDirFromEnv returns $OCTO_HOME or the default data dir.
func DataDirFromEnv() string {
	if d := os.Getenv("OCTO_HOME"); d != "" {
		return d
	}
	return DefaultDataDir
}

// fileName is the name of the saved configuration inside the data dir.
const fileName = "config.json"

// Load reads the configuration saved in dataDir. It returns an error wrapping
// fs.ErrNotExist when octo never ran with that data dir.
func Load(dataDir string) (Config, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, fileName))
	if err != nil {
		return Config{}, fmt.Errorf("read octo config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", filepath.Join(dataDir, fileName), err)
	}
	c.DataDir = dataDir
	return c, nil
}

// LoadOrDefault is Load, falling back to Default when nothing is saved yet.
func LoadOrDefault(dataDir string) (Config, error) {
	c, err := Load(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(dataDir), nil
	}
	return c, err
}

// Save writes the configuration into its data dir (mode 0600).
func (c Config) Save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode octo config: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return WriteFileAtomic(filepath.Join(c.DataDir, fileName), append(b, '\n'), 0o600)
}

// Validate checks that ports are usable and distinct.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("data dir %q must be an absolute path", c.DataDir)
	}
	seen := map[int]string{}
	for _, p := range c.Ports() {
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("port %d for %s is out of range (1-65535); change it with %s", p.Port, p.Name, p.Flag)
		}
		if other, dup := seen[p.Port]; dup {
			return fmt.Errorf("port %d is used for both %s and %s; change one with its flag", p.Port, other, p.Name)
		}
		seen[p.Port] = p.Name
	}
	return nil
}

// Port is one loopback TCP port octo listens on.
type Port struct {
	Name string // what listens, e.g. "S3 store"
	Port int
	Flag string // the `octo up` flag that changes it, empty for fixed ports
}

// Ports lists every loopback TCP port octo binds, configurable ones first.
func (c Config) Ports() []Port {
	return []Port{
		{"edge (API, dashboard, Workers)", c.EdgePort, "--edge-port"},
		{"OCI registry", c.RegistryPort, "--registry-port"},
		{"S3 store", c.S3Port, "--s3-port"},
		{"kube-apiserver", c.APIServerPort, "--apiserver-port"},
		{"kubelet", c.KubeletPort, "--kubelet-port"},
		{"kube-controller-manager", 10257, ""},
		{"kube-proxy healthz", 10256, ""},
		{"kube-proxy metrics", 10249, ""},
		{"containerd stream server", 10010, ""},
	}
}

// RunDir is the runtime directory under /run for this data dir: sockets, pid
// file and container state. The default data dir uses /run/octo; any other
// data dir gets its own directory so test instances never share one.
func (c Config) RunDir() string {
	if filepath.Clean(c.DataDir) == DefaultDataDir {
		return DefaultRunDir
	}
	sum := sha256.Sum256([]byte(filepath.Clean(c.DataDir)))
	return DefaultRunDir + "-" + hex.EncodeToString(sum[:4])
}

// Path joins elem onto the data dir.
func (c Config) Path(elem ...string) string {
	return filepath.Join(append([]string{c.DataDir}, elem...)...)
}

// RunPath joins elem onto the run dir.
func (c Config) RunPath(elem ...string) string {
	return filepath.Join(append([]string{c.RunDir()}, elem...)...)
}

// Addr is host:port on the loopback address.
func Addr(port int) string { return net.JoinHostPort(Host, strconv.Itoa(port)) }

// Well-known files in the data dir and run dir.

// KubeconfigPath is the admin kubeconfig users get.
func (c Config) KubeconfigPath() string { return c.Path("kubeconfig.yaml") }

// LogPath is the daemon's own log.
func (c Config) LogPath() string { return c.Path("logs", "octo.log") }

// ComponentLogPath is the log file of one component (kubelet, containerd, ...).
func (c Config) ComponentLogPath(name string) string { return c.Path("logs", name+".log") }

// PIDPath is the daemon's pid file; it lives in the data dir so that a lost
// /run (reboot) still lets `octo up` find and clean what a dead daemon left.
func (c Config) PIDPath() string { return c.Path("octo.pid") }

// StatusPath is where the daemon publishes the state of its components.
func (c Config) StatusPath() string { return c.RunPath("status.json") }

// KubeletDir is the kubelet's root directory (pods, volumes, plugins).
func (c Config) KubeletDir() string { return c.Path("kubelet") }

// BinDir holds the binaries octo extracts (containerd shim).
func (c Config) BinDir() string { return c.Path("bin") }

// ContainerdSocket is containerd's gRPC socket.
func (c Config) ContainerdSocket() string { return c.RunPath("containerd", "containerd.sock") }

// KineSocket is the etcd-API socket kine serves for the API server.
func (c Config) KineSocket() string { return c.RunPath("kine.sock") }

// S3CredentialsPath holds the generated S3 access and secret keys.
func (c Config) S3CredentialsPath() string { return c.Path("s3", "credentials.json") }

// PodAPIKeyPath holds the platform key (32 random bytes, mode 0600) from
// which the pods' per-account credentials for the pod API are derived.
func (c Config) PodAPIKeyPath() string { return c.Path("pod-api.key") }

// DashboardLoginKeyPath holds the key the daemon signs the dashboard's
// one-time login links with (mode 0600: only root makes links).
func (c Config) DashboardLoginKeyPath() string { return c.Path("dashboard", "login.key") }

// DurableObjectsDir holds the Durable Objects of every account, a
// directory per account that the pods hosting them mount.
func (c Config) DurableObjectsDir() string { return c.Path("durable-objects") }

// RegistryAddr is the registry's host:port, also the image name prefix.
func (c Config) RegistryAddr() string { return Addr(c.RegistryPort) }

// WriteFileAtomic writes data to path through a temporary file and a rename,
// so readers never see a partial file.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return placeFile(path, data, perm, os.Rename)
}

// placeFile writes data with perm to a temporary file next to path, then
// puts it at path with place (a rename replaces, a link fails when path
// exists), so readers never see a partial file.
func placeFile(path string, data []byte, perm fs.FileMode, place func(tmp, path string) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = place(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
