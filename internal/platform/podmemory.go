package platform

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// summary is the part of the kubelet's /stats/summary the dashboard shows.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Memory *struct {
			WorkingSetBytes *uint64 `json:"workingSetBytes"`
		} `json:"memory"`
	} `json:"pods"`
}

// PodMemory returns a function that reads the working-set memory of every
// pod ("namespace/name" → bytes) from each node's kubelet summary, through
// the API server's node proxy: what the kubelet compares with the limits.
func PodMemory(rc *rest.Config) (func(ctx context.Context) (map[string]uint64, error), error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("pod memory: %w", err)
	}
	return func(ctx context.Context) (map[string]uint64, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out := map[string]uint64{}
		for _, n := range nodes.Items {
			if !nodeReady(&n) {
				continue
			}
			raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", n.Name, "proxy", "stats", "summary").DoRaw(ctx)
			if err != nil {
				return nil, fmt.Errorf("stats of node %s: %w", n.Name, err)
			}
			var s summary
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("stats of node %s: %w", n.Name, err)
			}
			for _, p := range s.Pods {
				if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
					out[p.PodRef.Namespace+"/"+p.PodRef.Name] = *p.Memory.WorkingSetBytes
				}
			}
		}
		return out, nil
	}, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
