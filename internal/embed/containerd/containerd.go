// Package containerd runs containerd as a child process of octo (a re-exec of
// the octo binary), with the runc shim extracted from the binary and a pause
// image built in Go, so pods need neither Docker nor a public registry.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/embed/childproc"
)

// Namespace is the containerd namespace of the Kubernetes CRI.
const Namespace = "k8s.io"

// PauseImage is the sandbox image octo builds and imports at start.
const PauseImage = "octo.local/pause:1"

// StreamPort is the CRI streaming server's loopback port (exec, logs -f).
const StreamPort = 10010

// Containerd is the containerd component.
type Containerd struct {
	cfg  config.Config
	log  *slog.Logger
	cmd  *exec.Cmd
	done chan error
}

// New returns the containerd component of cfg.
func New(cfg config.Config, log *slog.Logger) *Containerd {
	return &Containerd{cfg: cfg, log: log}
}

// Name implements embed.Component.
func (c *Containerd) Name() string { return "containerd" }

// Endpoint implements embed.Endpointer.
func (c *Containerd) Endpoint() string { return "unix://" + c.cfg.ContainerdSocket() }

// ConfigPath is containerd's configuration file.
func (c *Containerd) ConfigPath() string { return c.cfg.Path("containerd", "config.toml") }

// Configuration renders containerd's version 3 configuration.
//
// restrict_oom_score_adj is needed on hosts without CAP_SYS_RESOURCE (the
// kubelet asks -998 for sandboxes and runc fails to set it).
//
// The CRI pulls from the embedded registry with its credentials, so every
// pod (a Worker bundle or a user's Deployment) pulls without a pull secret.
// registry.configs.<host>.auth is deprecated in containerd 2 (to go in 2.3)
// but still honoured beside config_path, which has no credentials.
func (c *Containerd) Configuration(creds config.RegistryCredentials) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[5]q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[6]q
%[11]s
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[7]s]
    conf_dir = %[8]q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = %[9]q
  stream_server_port = %[10]q
`, c.cfg.Path("containerd", "root"), c.cfg.RunPath("containerd"), c.cfg.ContainerdSocket(),
		c.cfg.ContainerdSocket()+".ttrpc", PauseImage, c.cfg.Path("certs.d"),
		quoteList(CNIBinDirs), c.cfg.Path("cni", "net.d"), config.Host, strconv.Itoa(StreamPort),
		registryAuth(c.registryNames(), creds))
}

// registryNames are the names pods may use for the embedded registry.
func (c *Containerd) registryNames() []string {
	return []string{c.cfg.RegistryAddr(), "localhost:" + strconv.Itoa(c.cfg.RegistryPort)}
}

// registryAuth renders the CRI auth tables of creds for each registry host.
func registryAuth(hosts []string, creds config.RegistryCredentials) string {
	out := ""
	for _, h := range hosts {
		out += fmt.Sprintf("    [plugins.\"io.containerd.cri.v1.images\".registry.configs.%q.auth]\n      username = %q\n      password = %q\n",
			h, creds.Username, creds.Password)
	}
	return out
}

// CNIBinDirs are where the CNI plugins are looked up (Debian's
// containernetworking-plugins, then the upstream default).
var CNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

func quoteList(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(v)
	}
	return out
}

// RegistryHosts renders the hosts.toml that lets containerd pull from a
// registry (the embedded one, or one of config.InsecureRegistries) over
// plain HTTP.
func RegistryHosts(registryAddr string) string {
	return fmt.Sprintf("server = %[1]q\n\n[host.%[1]q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+registryAddr)
}

// Start extracts the shim, writes the configuration and starts the child.
func (c *Containerd) Start(ctx context.Context) error {
	if _, err := ExtractShim(c.cfg); err != nil {
		return err
	}
	creds, err := config.EnsureRegistryCredentials(c.cfg)
	if err != nil {
		return err
	}
	// The configuration holds the registry password: 0600.
	if err := config.WriteFileAtomic(c.ConfigPath(), []byte(c.Configuration(creds)), 0o600); err != nil {
		return err
	}
	hosts := RegistryHosts(c.cfg.RegistryAddr())
	for _, name := range c.registryNames() {
		if err := config.WriteFileAtomic(c.cfg.Path("certs.d", name, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	for _, name := range c.cfg.InsecureRegistries {
		if err := config.WriteFileAtomic(c.cfg.Path("certs.d", name, "hosts.toml"), []byte(RegistryHosts(name)), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.cfg.RunPath("containerd"), 0o711); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	logf, err := os.OpenFile(c.cfg.ComponentLogPath("containerd"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, ChildCommand, "--config", c.ConfigPath())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+c.cfg.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Its own process group keeps a terminal's Ctrl-C away from it: the daemon
	// stops it in order. Pdeathsig is a safety net if the daemon is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// From a thread of its own: Pdeathsig follows the forking thread.
	exited, err := childproc.Start(cmd)
	if err != nil {
		logf.Close()
		return fmt.Errorf("start child: %w", err)
	}
	c.cmd = cmd
	c.done = make(chan error, 1)
	go func() {
		err := <-exited
		logf.Close()
		c.done <- err
	}()
	return nil
}

// Ready waits for containerd's API and its CRI service, then imports the
// pause image.
func (c *Containerd) Ready(ctx context.Context) error {
	for {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("exited (see %s): %v", c.cfg.ComponentLogPath("containerd"), err)
		default:
		}
		if _, err := os.Stat(c.cfg.ContainerdSocket()); err == nil {
			if err := c.ping(ctx); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c.importPause(ctx)
}

func (c *Containerd) ping(ctx context.Context) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ok, err := cl.IsServing(ctx)
	if err == nil && !ok {
		err = errors.New("not serving")
	}
	if err != nil {
		return err
	}
	// The CRI plugin initialises after the socket serves (longer with many
	// containers to recover); the kubelet refuses to start until it has.
	conn, ok := cl.Conn().(grpc.ClientConnInterface)
	if !ok {
		return fmt.Errorf("containerd client: connection %T is not gRPC", cl.Conn())
	}
	if _, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		return fmt.Errorf("CRI not ready: %w", err)
	}
	return nil
}

// Client connects to containerd in the CRI namespace.
func (c *Containerd) Client() (*containerd.Client, error) {
	return containerd.New(c.cfg.ContainerdSocket(), containerd.WithDefaultNamespace(Namespace))
}

// Stop sends SIGTERM and waits; after 10 s the child is killed. Shims and
// containers are left to the teardown.
func (c *Containerd) Stop(ctx context.Context) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return nil
}

// PID is the child's process id, 0 when not running.
func (c *Containerd) PID() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}
