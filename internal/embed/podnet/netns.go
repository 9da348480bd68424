package podnet

import (
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// NetnsDir is where containerd keeps the pods' network namespaces (one
// nsfs bind mount per pod, cni-<uuid>).
const NetnsDir = "/run/netns"

// ensureNetnsMount makes dir a shared bind mount of itself, as `ip netns
// add` does the first time it runs. It must happen before any pod
// namespace is mounted there: else the first `ip netns add` of anyone while
// pods run mounts the directory over itself, hides the pods' namespaces
// from containerd and the teardown, and they can no longer be removed. The
// mount stays after octo stops, as iproute2's does.
func ensureNetnsMount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return fmt.Errorf("is %s a mount point: %w", dir, err)
	}
	if !mounted {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}
