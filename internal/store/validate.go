package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

// WorkerdValidator returns an Options.Validate that starts each new version
// once with val (sandboxed, a few at a time): a startup error refuses the
// upload with workerd's message, as Cloudflare does (10021).
// Secrets are unset and KV is not reachable during that start, as neither is
// used before a request arrives.
func WorkerdValidator(val *workerd.Validator) ValidateFunc {
	return func(ctx context.Context, v *apiv1.WorkerVersion, parts []Part) (time.Duration, error) {
		paths := make(map[string]string, len(parts))
		files := make(map[string][]byte, len(parts))
		for i, p := range parts {
			path := fmt.Sprintf("modules/%d", i)
			paths[p.Name] = path
			files[path] = p.Data
		}
		// Secrets stay unset (null) during this start; any variable name will do.
		secrets := 0
		secretEnv := func(string) string { secrets++; return fmt.Sprintf("OCTO_SECRET_%d", secrets) }
		// Bindings reach services that do not run during this start:
		// workerd only needs their names to resolve.
		stub := func(kind string) func(string) string {
			return func(id string) string {
				sum := sha256.Sum256([]byte(id))
				return kind + "-" + hex.EncodeToString(sum[:6])
			}
		}
		self := workerd.ServiceName(v.Spec.ScriptName, v.Spec.VersionID)
		w, err := workerd.FromVersion(v, paths, workerd.Targets{
			KV: stub("kv"), R2: stub("r2"), D1: stub("d1"), SecretEnv: secretEnv,
			Assets: func(a *apiv1.VersionAssets) string { return stub("assets")(a.Manifest) },
			Script: func(script string) string {
				if script == v.Spec.ScriptName {
					return self
				}
				return stub("script")(script)
			},
		})
		if err != nil {
			return 0, err
		}
		return val.Validate(ctx, w, files)
	}
}
