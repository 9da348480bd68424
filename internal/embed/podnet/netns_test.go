package podnet

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestEnsureNetnsMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "netns")
	if err := ensureNetnsMount(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if ok, err := mountinfo.Mounted(dir); err != nil || !ok {
		t.Fatalf("%s mounted = %v, %v; want a bind mount of itself", dir, ok, err)
	}
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(infos) != 1 {
		t.Fatalf("mounts at %s: %v %v, want exactly one", dir, infos, err)
	}
	if opt := infos[0].Optional; len(opt) < 7 || opt[:7] != "shared:" {
		t.Errorf("the mount's propagation is %q, want shared", opt)
	}
	// Again (a warm `octo up`): no second mount on top.
	if err := ensureNetnsMount(dir); err != nil {
		t.Fatal(err)
	}
	if infos, _ := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir)); len(infos) != 1 {
		t.Errorf("after a second call %d mounts at %s, want 1", len(infos), dir)
	}
}
