package daemon

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/controller"
)

// criPuller pulls images through the node's CRI image service (the
// embedded containerd), as the kubelet would.
type criPuller struct {
	images internalapi.ImageManagerService
}

var _ controller.ImagePuller = (*criPuller)(nil)

// newCRIPuller connects to the CRI socket of cfg's containerd.
func newCRIPuller(cfg config.Config) (*criPuller, error) {
	svc, err := remote.NewRemoteImageService("unix://"+cfg.ContainerdSocket(), 10*time.Second, noop.NewTracerProvider(), nil)
	if err != nil {
		return nil, fmt.Errorf("CRI image service: %w", err)
	}
	return &criPuller{images: svc}, nil
}

// Pull implements controller.ImagePuller.
func (p *criPuller) Pull(ctx context.Context, image string) error {
	if _, err := p.images.PullImage(ctx, &runtimeapi.ImageSpec{Image: image}, nil, nil); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}
