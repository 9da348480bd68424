package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/octohq/octo/"

// layerOf maps a package (path relative to the module) to its layer; the
// longest matching prefix wins. A package missing here fails the test, so a
// new package must be placed in a layer on purpose.
var layerOf = map[string]int{
	"api/":                0,
	"internal/config":     0,
	"internal/version":    0,
	"internal/logs":       0,
	"internal/pki":        0,
	"internal/kubeconfig": 0,
	"internal/crds":       0,
	"internal/embed":      0,
	"internal/teardown":   0,
	"internal/precheck":   0,
	"internal/procstat":   0,
	"internal/layers":     0,
	"internal/workerd":    1,
	"internal/tail":       1,
	"internal/assets":     1,
	"internal/metrics":    1,
	"internal/workerlogs": 1,
	"internal/warmstart":  1,
	"internal/store":      2,
	"internal/builder":    3,
	"internal/gateway":    3,
	"internal/controller": 3,
	"internal/cron":       3,
	"internal/cfapi":      4,
	"internal/podapi":     4,
	"internal/edge":       4,
	"web":                 4,
	"internal/platform":   5,
	"internal/envvars":    5,
	"internal/daemon":     6,
	"internal/cli":        7,
	"cmd/":                7,
	"scripts/":            7,
	"e2e":                 7,
}

// fronts serve HTTP to one audience each; none builds on another.
var fronts = []string{"internal/cfapi", "internal/podapi", "internal/edge", "web"}

// notInDomain are imports the domain layer must not have: it speaks no HTTP.
var notInDomain = []string{"net/http", "github.com/labstack/echo"}

func layer(t *testing.T, pkg string) int {
	t.Helper()
	best, n := "", -1
	for prefix, l := range layerOf {
		if (pkg == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(pkg, prefix)) && len(prefix) > len(best) {
			best, n = prefix, l
		}
	}
	if n < 0 {
		t.Errorf("package %s has no layer: add it to layerOf and to the doc comment of package layers", pkg)
	}
	return n
}

func within(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

// imports lists every package of the module (with the e2e build tag) and its
// non-test imports, by `go list`.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", "e2e", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	all := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		all[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	if len(all) < 20 {
		t.Fatalf("go list found only %d packages", len(all))
	}
	return all
}

// TestLayers fails when a package imports a package of a higher layer, when
// an HTTP front imports another front, or when the domain layer imports HTTP.
func TestLayers(t *testing.T) {
	for pkg, deps := range imports(t) {
		l := layer(t, pkg)
		for _, dep := range deps {
			if within(pkg, "internal/store") {
				for _, bad := range notInDomain {
					if within(dep, bad) {
						t.Errorf("%s imports %s: the domain layer speaks no HTTP", pkg, dep)
					}
				}
			}
			rel, ours := strings.CutPrefix(dep, module)
			if !ours {
				continue
			}
			if dl := layer(t, rel); dl > l {
				t.Errorf("%s (layer %d) imports %s (layer %d): lower layers never import higher ones", pkg, l, rel, dl)
			}
			for _, f := range fronts {
				if within(rel, f) && l == 4 && !within(pkg, f) {
					t.Errorf("%s imports %s: one HTTP front never builds on another", pkg, rel)
				}
			}
		}
	}
}

// TestLayerRuleCatches checks the rule itself on imports that must fail.
func TestLayerRuleCatches(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"internal/store", "internal/cfapi"},
		{"internal/controller", "web"},
		{"internal/gateway", "internal/platform"},
		{"internal/workerd", "internal/store"},
		{"internal/builder", "internal/cfapi"},
	} {
		if layer(t, tc.from) >= layer(t, tc.to) {
			t.Errorf("%s → %s is allowed, but must not be", tc.from, tc.to)
		}
	}
}
