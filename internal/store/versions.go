package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

// Triggers of a version (annotation workers/triggered_by).
const (
	TriggerUpload = "upload"
	TriggerSecret = "secret"
)

// VersionInput is everything a new version is made of.
type VersionInput struct {
	Parts []Part
	// Metadata is the upload's metadata, validated (Upload.Validate).
	Metadata    Metadata
	TriggeredBy string
	// Deploy makes the version the script's only deployed version.
	Deploy bool
	// unbind drops these secret bindings from the version only: the values
	// stay for the versions that still bind them.
	unbind []string
}

// scriptLocks serialises writes per script, so versions are totally ordered.
// A script's entry lives only while someone holds or waits for its lock.
type scriptLocks struct {
	mu sync.Mutex
	m  map[string]*scriptLock
}

type scriptLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by scriptLocks.mu
}

// lock locks the script and returns the unlock.
func (l *scriptLocks) lock(a Account, script string) func() {
	k := a.ID + "/" + script
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*scriptLock{}
	}
	e := l.m[k]
	if e == nil {
		e = &scriptLock{}
		l.m[k] = e
	}
	e.refs++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
}

// CreateVersion stores a new version: files in S3 first, then secrets, the
// WorkerVersion and (when deploying) the WorkerRelease. On any failure what
// was written is removed again. It returns the version and, when in.Deploy,
// its deployment. A secret value it sets is stored under a key of its own
// (VersionSecretKey): the versions already made keep reading theirs.
func (s *Store) CreateVersion(ctx context.Context, a Account, script string, in VersionInput) (*apiv1.WorkerVersion, *apiv1.ReleaseDeployment, error) {
	unlock := s.locks.lock(a, script)
	defer unlock()
	return s.createVersionLocked(ctx, a, script, in)
}

// createVersionLocked is createVersion for a caller holding the script's lock.
func (s *Store) createVersionLocked(ctx context.Context, a Account, script string, in VersionInput) (*apiv1.WorkerVersion, *apiv1.ReleaseDeployment, error) {
	if err := ValidAnnotations(in.Metadata.Annotations); err != nil {
		return nil, nil, err
	}
	limits, err := in.Metadata.Limits.CPULimit()
	if err != nil {
		return nil, nil, err
	}
	versions, err := s.Versions(ctx, a, script)
	if err != nil {
		return nil, nil, err
	}
	var prev *apiv1.WorkerVersion
	number := int64(1)
	if len(versions) > 0 {
		prev = &versions[len(versions)-1]
		number = prev.Spec.Number + 1
	}
	// Secrets are the script's: an upload that deploys (PUT script) keeps
	// them, and so does a new version unless its keep_bindings leaves them
	// out (wrangler's `versions secret delete` sends ["secret_key"]).
	keep := in.Metadata.KeepBindings
	if in.Deploy || keep == nil {
		keep = append(slices.Clone(keep), apiv1.BindingSecretText, apiv1.BindingSecretKey)
	}
	assets, uploaded, err := s.versionAssets(ctx, a, prev, in.Metadata)
	if err != nil {
		return nil, nil, err
	}
	bindings, secretWrites, err := resolveBindings(prev, uploaded, keep, SecretName(script), number)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range in.unbind {
		bindings = slices.DeleteFunc(bindings, func(b apiv1.WorkerBinding) bool { return b.Name == k })
	}
	if err := checkObjectScripts(script, in.Metadata.Bindings); err != nil {
		return nil, nil, err
	}
	var prevObjects *apiv1.VersionDurableObjects
	if prev != nil {
		prevObjects = prev.Spec.DurableObjects
	}
	objects, err := migrateObjects(prevObjects, in.Metadata.Migrations, in.Deploy)
	if err != nil {
		return nil, nil, err
	}
	if err := bindObjects(objects, bindings); err != nil {
		return nil, nil, err
	}
	if err := s.checkBindingTargets(ctx, a, script, bindings, in.Metadata.Bindings); err != nil {
		return nil, nil, err
	}
	if len(bindings) > maxBindings { // kept secrets come on top of the upload's bindings
		return nil, nil, badUpload("too many bindings (%d with the kept ones, at most %d)", len(bindings), maxBindings)
	}
	if len(secretWrites) > 0 && prev != nil {
		sec, _, err := s.secret(ctx, a, script)
		if err != nil {
			return nil, nil, err
		}
		reuseSecrets(prev, bindings, secretWrites, sec.Data)
	}
	id := uuid.NewString()
	prefix := versionPrefix(a.ID, script, id)
	v := &apiv1.WorkerVersion{
		ObjectMeta: metav1.ObjectMeta{Name: VersionObjectName(script, number), Namespace: a.Namespace, Labels: scriptLabels(a, script)},
		Spec: apiv1.WorkerVersionSpec{
			AccountID: a.ID, ScriptName: script, VersionID: id, Number: number,
			Storage:            apiv1.WorkerVersionStorage{Bucket: Bucket, Prefix: prefix, MetadataKey: metadataKey(prefix)},
			MainModule:         in.Metadata.MainModule,
			BodyPart:           in.Metadata.BodyPart,
			Bindings:           bindings,
			CompatibilityDate:  in.Metadata.CompatibilityDate,
			CompatibilityFlags: in.Metadata.CompatibilityFlags,
			Annotations:        versionAnnotations(in),
			Source:             "wrangler",
			AuthorEmail:        s.author,
			Handlers:           []string{"fetch"},
			CreatedAt:          metav1.NewTime(s.now().UTC().Truncate(time.Millisecond)),
			Limits:             limits,
			Assets:             assets,
			DurableObjects:     objects,
		},
	}
	for _, p := range in.Parts {
		v.Spec.Modules = append(v.Spec.Modules, apiv1.WorkerModule{
			Name: p.Name, Type: p.Type, ContentType: p.ContentType, Key: moduleKey(prefix, p.Name),
			Size: int64(len(p.Data)), SHA256: p.SHA256(),
		})
	}
	if v.Spec.Modules == nil {
		v.Spec.Modules = []apiv1.WorkerModule{} // assets only: an empty list, not null
	}
	// 0. Start it once in workerd, before anything is written.
	if s.validate != nil && len(in.Parts) > 0 {
		d, err := s.validate(ctx, v, in.Parts)
		var se *workerd.StartupError
		if errors.As(err, &se) {
			return nil, nil, badUpload("%s", se.Message)
		}
		var ue *workerd.UnexportedClassError
		if errors.As(err, &ue) {
			return nil, nil, Errorf(Invalid, CodeObjectNotExported,
				"Cannot apply new-class migration to class '%s' that is not exported by script: export the Durable Object class, or delete it with a deleted_classes migration", strings.Join(ue.Classes, "', '"))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("validate version: %w", err)
		}
		v.Spec.StartupTimeMs = max(d.Milliseconds(), 0)
		v.Annotations = map[string]string{apiv1.AnnotationValidatedBy: workerd.Version}
	}

	// 1. S3: modules and metadata, immutable.
	undo := func() { _ = s.blobs.DeletePrefix(context.WithoutCancel(ctx), prefix) }
	for i, p := range in.Parts {
		if err := s.blobs.Put(ctx, v.Spec.Modules[i].Key, p.Data, p.ContentType, nil); err != nil {
			undo()
			return nil, nil, err
		}
	}
	metaJSON, err := json.Marshal(storedMetadata(v))
	if err != nil {
		undo()
		return nil, nil, err
	}
	if err := s.blobs.Put(ctx, v.Spec.Storage.MetadataKey, metaJSON, "application/json", nil); err != nil {
		undo()
		return nil, nil, err
	}
	// 2. The release (created with the first version) owns everything else.
	rel, created, err := s.ensureRelease(ctx, a, script)
	if err != nil {
		undo()
		return nil, nil, err
	}
	if created {
		prevUndo := undo
		undo = func() { prevUndo(); _ = s.k8s.Delete(context.WithoutCancel(ctx), rel) }
	}
	// 3. Secrets.
	if len(secretWrites) > 0 {
		inUse := secretKeysInUse(SecretName(script), versions, bindings)
		restore, err := s.writeSecrets(ctx, a, script, rel, secretWrites, inUse)
		if err != nil {
			undo()
			return nil, nil, err
		}
		prevUndo := undo
		undo = func() { restore(); prevUndo() }
	}
	// 4. The version.
	if err := controllerutil.SetOwnerReference(rel, v, s.k8s.Scheme()); err != nil {
		undo()
		return nil, nil, err
	}
	if err := s.k8s.Create(ctx, v); err != nil {
		undo()
		return nil, nil, fmt.Errorf("create WorkerVersion: %w", err)
	}
	if !in.Deploy {
		return v, nil, nil
	}
	// 5. The script's Workers Logs setting, which an upload that deploys
	// carries (validated with the upload).
	if obs, _ := in.Metadata.Observability.Observability(); in.Metadata.Observability != nil {
		if err := s.setObservabilityLocked(ctx, a, script, obs); err != nil {
			_ = s.k8s.Delete(context.WithoutCancel(ctx), v)
			undo()
			return nil, nil, err
		}
	}
	// 6. The deployment.
	d, err := s.deploy(ctx, a, script, []apiv1.VersionTraffic{{VersionID: id, Percentage: 100}}, map[string]string{}, in.TriggeredBy)
	if err != nil {
		_ = s.k8s.Delete(context.WithoutCancel(ctx), v)
		undo()
		return nil, nil, err
	}
	return v, d, nil
}

func versionAnnotations(in VersionInput) map[string]string {
	out := map[string]string{}
	for k, v := range in.Metadata.Annotations {
		if k == apiv1.AnnotationMessage || k == apiv1.AnnotationTag {
			out[k] = v
		}
	}
	out[apiv1.AnnotationTriggeredBy] = in.TriggeredBy
	return out
}

// ensureRelease returns the script's release, creating it when missing.
func (s *Store) ensureRelease(ctx context.Context, a Account, script string) (*apiv1.WorkerRelease, bool, error) {
	rel, err := s.FindRelease(ctx, a, script)
	if err != nil || rel != nil {
		return rel, false, err
	}
	rel = &apiv1.WorkerRelease{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(script), Namespace: a.Namespace, Labels: scriptLabels(a, script)},
		Spec:       apiv1.WorkerReleaseSpec{AccountID: a.ID, ScriptName: script},
	}
	if err := s.k8s.Create(ctx, rel); err != nil {
		if apierrors.IsAlreadyExists(err) { // the previous script of that name is still being removed
			return nil, false, Errorf(Conflict, CodeBadRequest, "Worker %q is still being deleted; retry in a moment", script)
		}
		return nil, false, fmt.Errorf("create WorkerRelease: %w", err)
	}
	return rel, true, nil
}

// deploy prepends a deployment to the script's release; the release keeps
// the newest apiv1.MaxDeploymentHistory. A message over MaxMessageLength is
// refused before anything changes.
func (s *Store) deploy(ctx context.Context, a Account, script string, traffic []apiv1.VersionTraffic, annotations map[string]string, trigger string) (*apiv1.ReleaseDeployment, error) {
	if err := ValidAnnotations(annotations); err != nil {
		return nil, err
	}
	d := apiv1.ReleaseDeployment{
		ID: uuid.NewString(), CreatedOn: metav1.NewTime(s.now().UTC().Truncate(time.Millisecond)),
		Source: "wrangler", AuthorEmail: s.author, Strategy: apiv1.DeploymentStrategyPercentage,
		Annotations: annotations, Versions: traffic,
	}
	if trigger != "" && trigger != TriggerUpload {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[apiv1.AnnotationTriggeredBy] = trigger
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rel, err := s.Release(ctx, a, script)
		if err != nil {
			return err
		}
		rel.Spec.Deployments = append([]apiv1.ReleaseDeployment{d}, rel.Spec.Deployments...)
		if len(rel.Spec.Deployments) > apiv1.MaxDeploymentHistory {
			rel.Spec.Deployments = rel.Spec.Deployments[:apiv1.MaxDeploymentHistory]
		}
		return s.k8s.Update(ctx, rel)
	})
	if err != nil {
		if AsError(err) != nil {
			return nil, err
		}
		return nil, fmt.Errorf("record deployment: %w", err)
	}
	return &d, nil
}

// writeSecrets stores writes (data key to value) in the script's Secret,
// removes the keys no version binds any more (not in inUse), and returns a
// function that restores its previous content.
func (s *Store) writeSecrets(ctx context.Context, a Account, script string, rel *apiv1.WorkerRelease, writes map[string]string, inUse map[string]bool) (func(), error) {
	sec, exists, err := s.secret(ctx, a, script)
	if err != nil {
		return nil, err
	}
	old := map[string][]byte{}
	for k, v := range sec.Data {
		old[k] = v
	}
	if !exists {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretName(script), Namespace: a.Namespace, Labels: scriptLabels(a, script)}, Type: corev1.SecretTypeOpaque}
		if err := controllerutil.SetOwnerReference(rel, sec, s.k8s.Scheme()); err != nil {
			return nil, err
		}
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	for k, v := range writes {
		sec.Data[k] = []byte(v)
	}
	for k := range sec.Data {
		if !inUse[k] {
			delete(sec.Data, k)
		}
	}
	if exists {
		err = s.k8s.Update(ctx, sec)
	} else {
		err = s.k8s.Create(ctx, sec)
	}
	if err != nil {
		return nil, fmt.Errorf("write secrets of %s: %w", script, err)
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		if !exists {
			_ = s.k8s.Delete(ctx, sec)
			return
		}
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, _, err := s.secret(ctx, a, script)
			if err != nil {
				return err
			}
			cur.Data = old
			return s.k8s.Update(ctx, cur)
		})
	}, nil
}

// resolveBindings turns the uploaded bindings into the version's bindings:
// inherit is resolved from the previous version, secret values are split out
// into secret writes (data key to value) under keys pinned to version number,
// and previous bindings the upload does not mention survive only when their
// type is in keep.
func resolveBindings(prev *apiv1.WorkerVersion, in []Binding, keep []string, secretName string, number int64) ([]apiv1.WorkerBinding, map[string]string, error) {
	prevByName := map[string]apiv1.WorkerBinding{}
	if prev != nil {
		for _, b := range prev.Spec.Bindings {
			prevByName[b.Name] = b
		}
	}
	writes := map[string]string{}
	var out []apiv1.WorkerBinding
	mentioned := map[string]bool{}
	for _, b := range in {
		mentioned[b.Name] = true
		switch b.Type {
		case BindingInherit:
			p, ok := prevByName[b.Name]
			if !ok {
				return nil, nil, Errorf(Invalid, CodeInheritBinding, "inherit binding '%s' is invalid", b.Name)
			}
			out = append(out, p)
		case apiv1.BindingSecretText:
			if b.Text == nil {
				p, ok := prevByName[b.Name]
				if !ok || p.Type != apiv1.BindingSecretText {
					return nil, nil, Errorf(Invalid, CodeInheritBinding, "inherit binding '%s' is invalid", b.Name)
				}
				out = append(out, p)
				continue
			}
			key := VersionSecretKey(b.Name, number)
			writes[key] = *b.Text
			out = append(out, apiv1.WorkerBinding{Name: b.Name, Type: b.Type, SecretRef: &apiv1.SecretKeyRef{Name: secretName, Key: key}})
		default:
			wb := apiv1.WorkerBinding{Name: b.Name, Type: b.Type, NamespaceID: b.NamespaceID, Part: b.Part,
				Service: b.Service, Environment: b.Environment, Entrypoint: b.Entrypoint,
				BucketName: b.BucketName, DatabaseID: b.ID, ClassName: b.ClassName}
			if b.Text != nil {
				wb.Text = *b.Text
			}
			if len(b.JSON) > 0 {
				wb.JSON = &apiextensionsv1.JSON{Raw: append([]byte(nil), b.JSON...)}
			}
			out = append(out, wb)
		}
	}
	if prev != nil {
		for _, p := range prev.Spec.Bindings {
			if mentioned[p.Name] {
				continue
			}
			if slices.Contains(keep, p.Type) {
				out = append(out, p)
			}
		}
	}
	return out, writes, nil
}

// reuseSecrets points a new secret binding back at the previous version's key
// when the value is unchanged (data holds the script's Secret), and drops its
// write: keys are never rewritten, so sharing one is safe, and re-sending
// every secret (`secret bulk`, `deploy --secrets-file`) does not grow the
// Secret.
func reuseSecrets(prev *apiv1.WorkerVersion, bindings []apiv1.WorkerBinding, writes map[string]string, data map[string][]byte) {
	prevByName := map[string]apiv1.WorkerBinding{}
	for _, b := range prev.Spec.Bindings {
		prevByName[b.Name] = b
	}
	for i, b := range bindings {
		if b.Type != apiv1.BindingSecretText || b.SecretRef == nil {
			continue
		}
		value, written := writes[b.SecretRef.Key]
		p, ok := prevByName[b.Name]
		if !written || !ok || p.Type != apiv1.BindingSecretText || p.SecretRef == nil || p.SecretRef.Name != b.SecretRef.Name {
			continue
		}
		if old, stored := data[p.SecretKey()]; stored && string(old) == value {
			delete(writes, b.SecretRef.Key)
			ref := *p.SecretRef
			bindings[i].SecretRef = &ref
		}
	}
}

// secretKeysInUse returns the data keys of the script's Secret (secretName)
// that the versions and the new version's bindings read.
func secretKeysInUse(secretName string, versions []apiv1.WorkerVersion, bindings []apiv1.WorkerBinding) map[string]bool {
	inUse := map[string]bool{}
	add := func(bs []apiv1.WorkerBinding) {
		for _, b := range bs {
			if b.Type != apiv1.BindingSecretText && b.Type != apiv1.BindingSecretKey {
				continue
			}
			if b.SecretRef == nil || b.SecretRef.Name == secretName {
				inUse[b.SecretKey()] = true
			}
		}
	}
	for i := range versions {
		add(versions[i].Spec.Bindings)
	}
	add(bindings)
	return inUse
}

// storedMetadata is the metadata.json written next to a version's modules:
// the version as the runtime needs it, without secret values.
func storedMetadata(v *apiv1.WorkerVersion) map[string]any {
	m := map[string]any{
		"id": v.Spec.VersionID, "script": v.Spec.ScriptName, "number": v.Spec.Number,
		"main_module": v.Spec.MainModule, "body_part": v.Spec.BodyPart,
		"modules": v.Spec.Modules, "bindings": v.Spec.Bindings,
		"compatibility_date": v.Spec.CompatibilityDate, "compatibility_flags": v.Spec.CompatibilityFlags,
		"annotations": v.Spec.Annotations, "created_on": v.Spec.CreatedAt.Format(time.RFC3339Nano),
	}
	if l := v.Spec.Limits; l != nil {
		m["limits"] = map[string]any{"cpu_ms": l.CPUMs}
	}
	return m
}

// LoadParts reads a version's modules back from S3.
func (s *Store) LoadParts(ctx context.Context, v *apiv1.WorkerVersion) ([]Part, error) {
	var parts []Part
	for _, m := range v.Spec.Modules {
		data, _, err := s.blobs.Get(ctx, m.Key)
		if err != nil {
			return nil, fmt.Errorf("read module %s of version %s: %w", m.Name, v.Spec.VersionID, err)
		}
		parts = append(parts, Part{Name: m.Name, ContentType: m.ContentType, Type: m.Type, Data: data})
	}
	return parts, nil
}

// versionAssets returns the assets of a new version (nil for none) and the
// upload's bindings without the assets binding, which the assets record:
// the completed upload metadata.assets names, or with keep_assets the
// previous version's.
func (s *Store) versionAssets(ctx context.Context, a Account, prev *apiv1.WorkerVersion, m Metadata) (*apiv1.VersionAssets, []Binding, error) {
	var binding string
	var rest []Binding
	for _, b := range m.Bindings {
		if b.Type == apiv1.BindingAssets {
			binding = b.Name
			continue
		}
		rest = append(rest, b)
	}
	var out *apiv1.VersionAssets
	switch {
	case m.Assets != nil && m.Assets.JWT != "":
		digest, files, err := s.completedAssets(ctx, a, m.Assets.JWT)
		if err != nil {
			return nil, nil, err
		}
		out = &apiv1.VersionAssets{Manifest: digest, Files: int32(files)}
	case m.KeepAssets && (prev == nil || prev.Spec.Assets == nil):
		// wrangler sends keep_assets with every secret change: nothing to keep.
		if m.MainModule == "" && m.BodyPart == "" {
			return nil, nil, Errorf(Invalid, CodeAssets, "keep_assets: the previous version has no assets to keep, and this upload has no code")
		}
		return nil, rest, nil
	case m.KeepAssets:
		out = prev.Spec.Assets.DeepCopy()
		if binding == "" && m.Assets == nil {
			binding = out.Binding // a derived version (a secret change) keeps everything
		}
	default:
		return nil, rest, nil
	}
	out.Binding = binding
	if m.Assets != nil && m.Assets.Config != nil {
		c := m.Assets.Config
		all, rules, err := c.RunWorkerFirstRules()
		if err != nil {
			return nil, nil, err
		}
		out.HTMLHandling, out.NotFoundHandling, out.RunWorkerFirst, out.RunWorkerFirstPaths = c.HTMLHandling, c.NotFoundHandling, all, rules
		out.Redirects, out.Headers = c.Redirects, c.Headers
	}
	return out, rest, nil
}
