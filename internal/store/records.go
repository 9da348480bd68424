package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
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

// VersionSecretKey is the data key, in the script's Secret, of the value of
// secret name that version number set: "<name>.v<number>". Each value keeps
// its own key, so versions that share it read it and a later value changes
// only the versions that bind the new key. Secret names have no '.', so these
// keys never collide with each other or with the bare names of older data.
func VersionSecretKey(name string, number int64) string {
	return name + ".v" + strconv.FormatInt(number, 10)
}

func scriptLabels(a Account, script string) map[string]string {
	l := map[string]string{}
	for k, v := range a.ReleaseLabels {
		l[k] = v
	}
	l[apiv1.LabelAccount] = a.ID
	l[apiv1.LabelScript] = ObjectName(script)
	return l
}

// FindRelease returns the script's WorkerRelease, or nil when the script does
// not exist.
func (s *Store) FindRelease(ctx context.Context, a Account, script string) (*apiv1.WorkerRelease, error) {
	return ReadRelease(ctx, s.k8s, a, script)
}

// ReadRelease is FindRelease through any reader (the gateway and the
// dashboard read from informer caches): the account's WorkerRelease of the
// script, or nil when there is none or it is being deleted.
func ReadRelease(ctx context.Context, r client.Reader, a Account, script string) (*apiv1.WorkerRelease, error) {
	var rel apiv1.WorkerRelease
	err := r.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: ObjectName(script)}, &rel)
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

// Release is FindRelease with a NotFound refusal (CodeNotFound) when the
// script does not exist.
func (s *Store) Release(ctx context.Context, a Account, script string) (*apiv1.WorkerRelease, error) {
	rel, err := s.FindRelease(ctx, a, script)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, workerNotFound(script)
	}
	return rel, nil
}

// Versions returns the script's versions, oldest first.
func (s *Store) Versions(ctx context.Context, a Account, script string) ([]apiv1.WorkerVersion, error) {
	return ReadVersions(ctx, s.k8s, a, script)
}

// ReadVersions is Versions through any reader.
func ReadVersions(ctx context.Context, r client.Reader, a Account, script string) ([]apiv1.WorkerVersion, error) {
	var list apiv1.WorkerVersionList
	// Only the identifying labels: the account's release labels may have
	// changed since older versions were made.
	sel := client.MatchingLabels{apiv1.LabelAccount: a.ID, apiv1.LabelScript: ObjectName(script)}
	if err := r.List(ctx, &list, client.InNamespace(a.Namespace), sel); err != nil {
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

// Version returns the script's version with id (with or without hyphens), or
// a NotFound refusal (CodeVersionNotFound).
func (s *Store) Version(ctx context.Context, a Account, script, id string) (*apiv1.WorkerVersion, error) {
	versions, err := s.Versions(ctx, a, script)
	if err != nil {
		return nil, err
	}
	id = normalizeID(id)
	for i := range versions {
		if versions[i].Spec.VersionID == id {
			return &versions[i], nil
		}
	}
	return nil, Errorf(NotFound, CodeVersionNotFound, "version %s of script %q not found", id, script)
}

// normalizeID accepts version ids with or without hyphens.
func normalizeID(id string) string {
	id = strings.ToLower(id)
	if len(id) == 32 && !strings.Contains(id, "-") {
		return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
	}
	return id
}

// secret returns the script's Secret (empty when it has none).
func (s *Store) secret(ctx context.Context, a Account, script string) (*corev1.Secret, bool, error) {
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

// Releases returns the account's scripts (their WorkerReleases), by script name.
func (s *Store) Releases(ctx context.Context, a Account) ([]apiv1.WorkerRelease, error) {
	var list apiv1.WorkerReleaseList
	if err := s.k8s.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingLabels{apiv1.LabelAccount: a.ID}); err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	out := list.Items[:0]
	for _, r := range list.Items {
		if r.Spec.AccountID == a.ID && r.DeletionTimestamp == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.ScriptName < out[j].Spec.ScriptName })
	return out, nil
}

// AccountVersions returns the versions of every script of the account, by
// script name, oldest first.
func (s *Store) AccountVersions(ctx context.Context, a Account) (map[string][]apiv1.WorkerVersion, error) {
	var list apiv1.WorkerVersionList
	if err := s.k8s.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingLabels{apiv1.LabelAccount: a.ID}); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	out := map[string][]apiv1.WorkerVersion{}
	for _, v := range list.Items {
		if v.Spec.AccountID == a.ID && v.DeletionTimestamp == nil {
			out[v.Spec.ScriptName] = append(out[v.Spec.ScriptName], v)
		}
	}
	for _, vs := range out {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Spec.Number < vs[j].Spec.Number })
	}
	return out, nil
}

// LatestVersion returns the script's newest version, or a NotFound refusal.
func (s *Store) LatestVersion(ctx context.Context, a Account, script string) (*apiv1.WorkerVersion, error) {
	if _, err := s.Release(ctx, a, script); err != nil {
		return nil, err
	}
	versions, err := s.Versions(ctx, a, script)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, workerNotFound(script)
	}
	return &versions[len(versions)-1], nil
}
