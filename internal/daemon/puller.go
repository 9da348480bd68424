package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
)

// criPuller pulls images through the node's CRI image service (the
// embedded containerd), as the kubelet would. It connects on its first
// pull: the operators start before containerd serves at a warm start.
type criPuller struct {
	socket string

	mu     sync.Mutex
	images internalapi.ImageManagerService
}

var _ controller.ImagePuller = (*criPuller)(nil)

// newCRIPuller returns the puller of cfg's containerd.
func newCRIPuller(cfg config.Config) *criPuller {
	return &criPuller{socket: "unix://" + cfg.ContainerdSocket()}
}

// service connects to the CRI image service once it serves.
func (p *criPuller) service() (internalapi.ImageManagerService, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.images == nil {
		svc, err := remote.NewRemoteImageService(p.socket, 10*time.Second, noop.NewTracerProvider(), nil)
		if err != nil {
			return nil, fmt.Errorf("CRI image service: %w", err)
		}
		p.images = svc
	}
	return p.images, nil
}

// Pull implements controller.ImagePuller.
func (p *criPuller) Pull(ctx context.Context, image string) error {
	images, err := p.service()
	if err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	if _, err := images.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, nil, nil); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}
