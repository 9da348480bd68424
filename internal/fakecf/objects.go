package fakecf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
)

// Labels octo puts on the objects it creates for a script.
const (
	LabelAccount = "api.cf-worker/account"
	LabelScript  = "api.cf-worker/script"
)

// ObjectName is the Kubernetes name of a script's objects, also used as a
// label value, so it must be a DNS label: at most 63 characters, starting and
// ending with a letter or digit. Script names are one unless they hold '_'
// (which object names may not) or end in '-'; those get '_' replaced, are cut
// to fit, and get a short hash suffix so that "a_b", "a-b" and "a-b-" never
// collide.
func ObjectName(script string) string {
	if !strings.Contains(script, "_") && !strings.HasSuffix(script, "-") {
		return script
	}
	sum := sha256.Sum256([]byte(script))
	base := strings.ReplaceAll(script, "_", "-")
	if maxBase := 63 - len("-123456"); len(base) > maxBase {
		base = base[:maxBase]
	}
	return base + "-" + hex.EncodeToString(sum[:3])
}

// VersionObjectName is the name of the WorkerVersion of a script's version number.
func VersionObjectName(script string, number int64) string {
	return fmt.Sprintf("%s-v%d", ObjectName(script), number)
}

// SecretName is the name of the Kubernetes Secret holding a script's secrets.
func SecretName(script string) string { return ObjectName(script) + "-secrets" }

func scriptLabels(a Account, script string) map[string]string {
	l := map[string]string{}
	for k, v := range a.ReleaseLabels {
		l[k] = v
	}
	l[LabelAccount] = a.ID
	l[LabelScript] = ObjectName(script)
	return l
}

// getRelease returns the script's WorkerRelease, or nil when the script does
// not exist.
func (s *Server) getRelease(ctx context.Context, a Account, script string) (*apiv1.WorkerRelease, error) {
	var rel apiv1.WorkerRelease
	err := s.k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: ObjectName(script)}, &rel)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get release %s: %w", script, err)
	}
	if rel.Spec.AccountID != a.ID || rel.Spec.ScriptName != script || rel.DeletionTimestamp != nil {
		return nil, nil
	}
	return &rel, nil
}

// mustRelease is getRelease, answering Cloudflare's 404 (code 10007) when the
// script does not exist.
func (s *Server) mustRelease(ctx context.Context, a Account, script string) (*apiv1.WorkerRelease, error) {
	rel, err := s.getRelease(ctx, a, script)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, workerNotFound(script)
	}
	return rel, nil
}

func workerNotFound(script string) *APIError {
	return Errorf(404, CodeNotFound, "This Worker does not exist on your account. (script %q)", script)
}

// listVersions returns the script's versions, oldest first.
func (s *Server) listVersions(ctx context.Context, a Account, script string) ([]apiv1.WorkerVersion, error) {
	var list apiv1.WorkerVersionList
	// Only the identifying labels: the account's release labels may have
	// changed since older versions were made.
	sel := client.MatchingLabels{LabelAccount: a.ID, LabelScript: ObjectName(script)}
	if err := s.k8s.List(ctx, &list, client.InNamespace(a.Namespace), sel); err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", script, err)
	}
	out := list.Items[:0]
	for _, v := range list.Items {
		if v.Spec.ScriptName == script && v.DeletionTimestamp == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Number < out[j].Spec.Number })
	return out, nil
}

// findVersion returns the script's version with id, or a 404.
func (s *Server) findVersion(ctx context.Context, a Account, script, id string) (*apiv1.WorkerVersion, error) {
	versions, err := s.listVersions(ctx, a, script)
	if err != nil {
		return nil, err
	}
	id = normalizeID(id)
	for i := range versions {
		if versions[i].Spec.VersionID == id {
			return &versions[i], nil
		}
	}
	return nil, Errorf(404, CodeVersionNotFound, "version %s of script %q not found", id, script)
}

// normalizeID accepts version ids with or without hyphens.
func normalizeID(id string) string {
	id = strings.ToLower(id)
	if len(id) == 32 && !strings.Contains(id, "-") {
		return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
	}
	return id
}

// getSecret returns the script's Secret (empty when it has none).
func (s *Server) getSecret(ctx context.Context, a Account, script string) (*corev1.Secret, bool, error) {
	var sec corev1.Secret
	err := s.k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: SecretName(script)}, &sec)
	if apierrors.IsNotFound(err) {
		return &corev1.Secret{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get secrets of %s: %w", script, err)
	}
	return &sec, true, nil
}
