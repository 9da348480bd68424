// Package warmstart serves the Workers of an earlier run while their pods
// come back (docs/adr/0015-warm-start.md).
//
// `octo down` removes every pod, and at the next `octo up` the kubelet
// starts them all again: each workerd process compiles every Worker of its
// bundle before it serves any. With 1,000 Workers that is seconds of CPU
// per pod, on top of the control plane's own start. So when octo stops it
// saves a Snapshot: the code of every version an active deployment serves
// that the Worker Loader can run. When it starts again, Hosts runs a few
// workerd loader hosts outside Kubernetes, as soon as the data dir is read,
// and loads those versions from the snapshot; the gateway sends a request
// for a Worker that no pod serves yet to the host that holds it
// (HostIndex). Once the pods serve, the hosts stop.
package warmstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/octohq/octo/internal/workerd"
)

// Entry is one version of the snapshot; its code is kept apart (Code).
type Entry struct {
	Account string `json:"account"`
	// Subdomain is the account's workers subdomain, lower-case, when one
	// account alone claims it: the gateway serves the entry under it before
	// its cache syncs (gateway.Starting). Empty: only once it has.
	Subdomain string `json:"subdomain,omitempty"`
	Script    string `json:"script"`
	Version   string `json:"version"`
}

// indexFile lists the snapshot's entries without their code.
const indexFile = "index.json"

// Snapshot is the directory that holds the saved versions: index.json, and
// code/<version>.json for each. Only root reads it (it holds secrets'
// values): the directory is 0700, the files 0600.
type Snapshot struct{ Dir string }

// versionRE is what a version ID may look like to become a file name.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CodeFunc returns the code of the version of an entry.
type CodeFunc func(ctx context.Context, e Entry) (workerd.LoaderCode, error)

// codeReads is how many versions' code Update reads at once.
const codeReads = 8

// Update makes the snapshot hold entries: the code
// of a version it does not hold yet comes from code, the code of versions
// no longer listed is removed, and the index is replaced last, by a
// rename, so that it never lists a version whose code is missing. A
// version whose code cannot be had is left out and returned in skipped.
func (s Snapshot) Update(ctx context.Context, entries []Entry, code CodeFunc) (saved []Entry, skipped map[string]error, err error) {
	codeDir := filepath.Join(s.Dir, "code")
	if err := os.MkdirAll(codeDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("warm-start snapshot: %w", err)
	}
	keep := map[string]bool{}
	skipped = map[string]error{}
	var missing []Entry
	for _, e := range entries {
		if !versionRE.MatchString(e.Version) {
			skipped[e.Script+"/"+e.Version] = errors.New("the version ID cannot name a file")
			continue
		}
		if _, err := os.Stat(filepath.Join(codeDir, e.Version+".json")); err != nil {
			missing = append(missing, e)
		}
		keep[e.Version] = true
	}
	// The new versions' code, codeReads at a time.
	var mu sync.Mutex
	var writeErr error
	work := make(chan Entry)
	var wg sync.WaitGroup
	for range codeReads {
		wg.Go(func() {
			for e := range work {
				c, err := code(ctx, e)
				if err == nil {
					var b []byte
					if b, err = json.Marshal(c); err == nil {
						if err := writeFile(filepath.Join(codeDir, e.Version+".json"), b); err != nil {
							mu.Lock()
							writeErr = err
							mu.Unlock()
						}
					}
				}
				if err != nil {
					mu.Lock()
					skipped[e.Script+"/"+e.Version] = err
					delete(keep, e.Version)
					mu.Unlock()
				}
			}
		})
	}
	for _, e := range missing {
		if ctx.Err() != nil {
			break
		}
		work <- e
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if writeErr != nil {
		return nil, nil, writeErr
	}
	for _, e := range entries {
		if keep[e.Version] {
			saved = append(saved, e)
		}
	}
	b, err := json.Marshal(saved)
	if err != nil {
		return nil, nil, fmt.Errorf("warm-start snapshot: %w", err)
	}
	if err := writeFile(filepath.Join(s.Dir, indexFile), b); err != nil {
		return nil, nil, err
	}
	files, err := os.ReadDir(codeDir)
	if err != nil {
		return nil, nil, fmt.Errorf("warm-start snapshot: %w", err)
	}
	for _, f := range files {
		if v, ok := strings.CutSuffix(f.Name(), ".json"); !ok || !keep[v] {
			_ = os.Remove(filepath.Join(codeDir, f.Name()))
		}
	}
	return saved, skipped, nil
}

// writeFile writes path whole or not at all (a rename), mode 0600.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("warm-start snapshot: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("warm-start snapshot: %w", err)
	}
	return nil
}

// Entries reads the snapshot's index; none when there is no snapshot.
func (s Snapshot) Entries() ([]Entry, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("warm-start snapshot: %w", err)
	}
	var out []Entry
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("warm-start snapshot %s: %w", s.Dir, err)
	}
	return out, nil
}

// Code reads the saved code of version, as JSON (a workerd.LoaderCode).
func (s Snapshot) Code(version string) ([]byte, error) {
	if !versionRE.MatchString(version) {
		return nil, fs.ErrNotExist
	}
	return os.ReadFile(filepath.Join(s.Dir, "code", version+".json"))
}

// Remove deletes the snapshot.
func (s Snapshot) Remove() error { return os.RemoveAll(s.Dir) }

// HostIndex is which of n hosts holds version: the gateway and the preload
// agree on it, so each version is loaded once.
func HostIndex(version string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(version))
	return int(h.Sum32() % uint32(n))
}
