package workload

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/octohq/octo/internal/cfapi"
	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/store"
)

// Wrangler runs the real wrangler (e2e/node_modules, `npm ci --prefix e2e`)
// against an octo, in a copy of a corpus project, with everything kept on
// loopback: its own HOME and TMPDIR, no metrics or error reports, and the npm
// update check answered by a local stub.
type Wrangler struct {
	Dir string // the project copy
	bin string
	env []string
	tmp string
	reg *httptest.Server
}

// NewWrangler copies e2e/testdata/workers/<project> into a temp dir. Close
// removes it.
func NewWrangler(cfg config.Config, project string) (*Wrangler, error) {
	id, err := store.LoadIdentity(cfg)
	if err != nil {
		return nil, err
	}
	_, file, _, _ := runtime.Caller(0)
	e2e := filepath.Join(filepath.Dir(file), "..")
	tmp, err := os.MkdirTemp("", "octo-wrangler")
	if err != nil {
		return nil, err
	}
	w := &Wrangler{Dir: filepath.Join(tmp, project), bin: filepath.Join(e2e, "node_modules", ".bin", "wrangler"), tmp: tmp}
	if out, err := exec.Command("cp", "-r", filepath.Join(e2e, "testdata", "workers", project), w.Dir).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("copy project %s: %v %s", project, err, out)
	}
	w.reg = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(rw, `{"dist-tags":{"latest":"4.86.0"}}`)
	}))
	w.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp, "NO_COLOR=1",
		"CLOUDFLARE_API_BASE_URL=http://" + config.Addr(cfg.EdgePort) + cfapi.BasePath,
		"CLOUDFLARE_API_TOKEN=" + id.Token, "CLOUDFLARE_ACCOUNT_ID=" + id.AccountID,
		"WRANGLER_SEND_METRICS=false", "WRANGLER_SEND_ERROR_REPORTS=false", "npm_registry=" + w.reg.URL + "/",
	}
	return w, nil
}

// Run runs wrangler with args in the project and returns its wall time.
func (w *Wrangler) Run(args ...string) (time.Duration, error) {
	cmd := exec.Command(w.bin, args...)
	cmd.Dir, cmd.Env = w.Dir, w.env
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("wrangler %v: %w\n%s", args, err, out)
	}
	return time.Since(t0), nil
}

// Close removes the project copy and stops the stub.
func (w *Wrangler) Close() {
	w.reg.Close()
	os.RemoveAll(w.tmp)
}
