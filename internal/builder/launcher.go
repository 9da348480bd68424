package builder

import (
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
)

// launcherFS holds octo-launch, which `make assets` builds into bin/.
//
//go:embed bin
var launcherFS embed.FS

// LauncherBin is octo-launch in the image: it clears the socket directory
// of a previous run, then executes workerd (cmd/octo-launch).
const LauncherBin = "/bin/octo-launch"

// SocketDir is where workerd listens on a unix socket per Worker, besides
// its TCP port: a volume of the pod that the gateway on the same node opens
// from the host (workerd.UnixSocketPath names the files).
const SocketDir = "/run/octo"

// ErrNoLauncher means octo was compiled without `make assets`.
var ErrNoLauncher = errors.New("this octo binary was built without octo-launch; build it with `make build` (tests: `make test`)")

// launcher returns the embedded octo-launch and a stamp of its content.
func launcher() ([]byte, string, error) {
	b, err := launcherFS.ReadFile("bin/octo-launch")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", ErrNoLauncher
	}
	if err != nil {
		return nil, "", fmt.Errorf("read octo-launch: %w", err)
	}
	return b, fmt.Sprintf("octo-launch:%x;", sha256.Sum256(b)), nil
}
