package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"k8s.io/client-go/rest"
)

// Kubelet is how the dashboard reads the node's stats: the kubelet's
// address, the name it serves as and the CA of its certificate, reached
// with the admin credentials of the cluster's rest.Config. The API server's
// node proxy cannot be used: it refuses loopback node addresses.
type Kubelet struct {
	Addr     string // host:port
	NodeName string
	// CAFile holds the PEM certificate that signed the kubelet's serving
	// certificate (octo's cluster CA, pki.ServingName).
	CAFile string
	// RootDir is the kubelet's root directory when it runs on this host
	// (embedded mode): the gateway then reaches the node's workerd pods on
	// their unix sockets (gateway.NodeSockets). Empty: over the pod network.
	RootDir string
	// Started is when the node's kubelet (the daemon) started, with
	// RootDir: pods it left from an earlier run get no request until it
	// reports them again (gateway.Options.NodeStarted).
	Started time.Time
}

// summary is the part of the kubelet's /stats/summary octo reads.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
		} `json:"podRef"`
		CPU *struct {
			UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
		} `json:"cpu"`
		Memory *struct {
			WorkingSetBytes *uint64 `json:"workingSetBytes"`
		} `json:"memory"`
	} `json:"pods"`
}

// PodStat is what the kubelet reports of one pod.
type PodStat struct {
	// UID tells a pod from an earlier one of the same name.
	UID string
	// CPUNanos is the CPU time the pod has spent since it started, in
	// nanoseconds, when HasCPU.
	CPUNanos uint64
	// HasCPU says the kubelet reported CPUNanos.
	HasCPU bool
	// MemoryBytes is its working set: what the kubelet compares with the
	// pod's limits; 0 when not reported.
	MemoryBytes uint64
}

// PodStats returns a function that reads the CPU time and working-set
// memory of every pod of the node ("namespace/name" → PodStat) from the
// kubelet's summary.
func PodStats(rc *rest.Config, k Kubelet) (func(ctx context.Context) (map[string]PodStat, error), error) {
	base, err := rest.TLSConfigFor(rc)
	if err != nil {
		return nil, fmt.Errorf("pod stats: %w", err)
	}
	return func(ctx context.Context) (map[string]PodStat, error) {
		pem, err := os.ReadFile(k.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubelet CA %s: no PEM certificate", k.CAFile)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: k.NodeName}
		if base != nil {
			cfg.Certificates, cfg.GetClientCertificate = base.Certificates, base.GetClientCertificate
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+k.Addr+"/stats/summary?only_cpu_and_memory=true", nil)
		if err != nil {
			return nil, fmt.Errorf("kubelet stats: %w", err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("kubelet stats: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return nil, fmt.Errorf("kubelet stats: %s: %s", resp.Status, msg)
		}
		var s summary
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			return nil, fmt.Errorf("kubelet stats: %w", err)
		}
		out := make(map[string]PodStat, len(s.Pods))
		for _, p := range s.Pods {
			st := PodStat{UID: p.PodRef.UID}
			if p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil {
				st.CPUNanos, st.HasCPU = *p.CPU.UsageCoreNanoSeconds, true
			}
			if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
				st.MemoryBytes = *p.Memory.WorkingSetBytes
			}
			out[p.PodRef.Namespace+"/"+p.PodRef.Name] = st
		}
		return out, nil
	}, nil
}

// memoryOf adapts stats to the dashboard's pod memory reader.
func memoryOf(stats func(ctx context.Context) (map[string]PodStat, error)) func(ctx context.Context) (map[string]uint64, error) {
	return func(ctx context.Context) (map[string]uint64, error) {
		all, err := stats(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]uint64, len(all))
		for k, st := range all {
			if st.MemoryBytes > 0 {
				out[k] = st.MemoryBytes
			}
		}
		return out, nil
	}
}
