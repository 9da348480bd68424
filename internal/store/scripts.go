package store

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
)

// DeleteScript removes the script: its versions, deployments, secrets and
// stored files.
func (s *Store) DeleteScript(ctx context.Context, a Account, script string) error {
	if err := ValidScriptName(script); err != nil {
		return err
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	rel, err := s.Release(ctx, a, script)
	if err != nil {
		return err
	}
	versions, err := s.Versions(ctx, a, script)
	if err != nil {
		return err
	}
	for i := range versions {
		if err := client.IgnoreNotFound(s.k8s.Delete(ctx, &versions[i])); err != nil {
			return fmt.Errorf("delete version: %w", err)
		}
	}
	if sec, exists, err := s.secret(ctx, a, script); err != nil {
		return err
	} else if exists {
		if err := client.IgnoreNotFound(s.k8s.Delete(ctx, sec)); err != nil {
			return fmt.Errorf("delete secrets: %w", err)
		}
	}
	// The files go before the release: the release's finalizer (operators)
	// removes them too, and two removals of one prefix must not race.
	if err := s.blobs.DeletePrefix(ctx, ScriptPrefix(a.ID, script)); err != nil {
		return err
	}
	if err := client.IgnoreNotFound(s.k8s.Delete(ctx, rel)); err != nil {
		return fmt.Errorf("delete release: %w", err)
	}
	return nil
}

// Traffic is one version of a deployment request: its ID (with or without
// hyphens) and its share of requests; a nil Percentage is refused.
type Traffic struct {
	VersionID  string
	Percentage *int
}

// Deployment is a request to route a script's traffic, as `wrangler versions
// deploy`, `wrangler rollback` and the dashboard make it.
type Deployment struct {
	// Strategy must be "" or "percentage".
	Strategy string
	Versions []Traffic
	// Message is the deployment's workers/message annotation.
	Message *string
}

// Deploy checks d (1 or 2 known versions, percentages adding up to 100) and
// makes it the script's active deployment.
func (s *Store) Deploy(ctx context.Context, a Account, script string, d Deployment) (*apiv1.ReleaseDeployment, error) {
	if d.Strategy != "" && d.Strategy != string(apiv1.DeploymentStrategyPercentage) {
		return nil, Errorf(Invalid, CodeBadDeployment, "unsupported deployment strategy %q: use \"percentage\"", d.Strategy)
	}
	if n := len(d.Versions); n < 1 || n > apiv1.MaxVersionsPerDeployment {
		return nil, Errorf(Invalid, CodeBadDeployment, "a deployment needs 1 or 2 versions, got %d", n)
	}
	if _, err := s.Release(ctx, a, script); err != nil {
		return nil, err
	}
	latest, err := s.LatestVersion(ctx, a, script)
	if err != nil {
		return nil, err
	}
	var traffic []apiv1.VersionTraffic
	sum, seen := 0, map[string]bool{}
	for _, v := range d.Versions {
		if v.Percentage == nil || *v.Percentage < 0 || *v.Percentage > 100 {
			return nil, Errorf(Invalid, CodeBadDeployment, "version %s needs a percentage between 0 and 100", v.VersionID)
		}
		wv, err := s.Version(ctx, a, script, v.VersionID)
		if err != nil {
			return nil, err
		}
		if seen[wv.Spec.VersionID] {
			return nil, Errorf(Invalid, CodeBadDeployment, "version %s is listed twice", wv.Spec.VersionID)
		}
		seen[wv.Spec.VersionID] = true
		if !sameObjects(wv.Spec.DurableObjects, latest.Spec.DurableObjects) {
			return nil, Errorf(Invalid, CodeObjectMigration,
				"version %s has other Durable Object classes than the script's latest (a migration came between): it cannot be deployed; deploy a new version instead", wv.Spec.VersionID)
		}
		sum += *v.Percentage
		traffic = append(traffic, apiv1.VersionTraffic{VersionID: wv.Spec.VersionID, Percentage: int32(*v.Percentage)})
	}
	if sum != 100 {
		return nil, Errorf(Invalid, CodeBadDeployment, "the percentages of a deployment must add up to 100, not %d", sum)
	}
	annotations := map[string]string{}
	if d.Message != nil {
		annotations[apiv1.AnnotationMessage] = *d.Message
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	return s.deploy(ctx, a, script, traffic, annotations, "")
}

const secretEditNotDeployed = "Secret edit failed. You attempted to modify a secret, but the latest version of your Worker isn't currently deployed. " +
	"Please ensure that the latest version of your Worker is fully deployed (wrangler versions deploy) before modifying secrets."

const settingsEditNotDeployed = "Script edit failed. You attempted to deploy the latest version with modified settings, but the latest version isn't currently deployed."

// PutSecret is `wrangler secret put`: a new version with the secret set,
// deployed at 100 %.
func (s *Store) PutSecret(ctx context.Context, a Account, script, name, value string) error {
	if err := ValidSecretName(name); err != nil {
		return err
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.LatestVersion(ctx, a, script)
	if err != nil {
		return err
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSecretEditNotDeployed, secretEditNotDeployed); err != nil {
		return err
	}
	bindings := []Binding{{Name: name, Type: apiv1.BindingSecretText, Text: &value}}
	for _, b := range prev.Spec.Bindings {
		if b.Name != name {
			bindings = append(bindings, Binding{Name: b.Name, Type: BindingInherit})
		}
	}
	_, err = s.deriveVersion(ctx, a, script, prev, derived{bindings: bindings, deploy: true})
	return err
}

// DeleteSecret is `wrangler secret delete`: a new version without the secret,
// deployed at 100 %. The value stays for the older versions (a rollback).
func (s *Store) DeleteSecret(ctx context.Context, a Account, script, name string) error {
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.LatestVersion(ctx, a, script)
	if err != nil {
		return err
	}
	var bindings []Binding
	found := false
	for _, b := range prev.Spec.Bindings {
		if b.Name == name && b.Type == apiv1.BindingSecretText {
			found = true
			continue
		}
		bindings = append(bindings, Binding{Name: b.Name, Type: BindingInherit})
	}
	if !found {
		return Errorf(NotFound, CodeSecretNotFound, "secret %q not found on script %q", name, script)
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSecretEditNotDeployed, secretEditNotDeployed); err != nil {
		return err
	}
	_, err = s.deriveVersion(ctx, a, script, prev, derived{bindings: bindings, unbind: []string{name}, deploy: true})
	return err
}

// UpdateSettings is `wrangler secret bulk` (PATCH settings): bindings lists
// every binding of the script; those of type secret_text with a text set a
// secret, every other one keeps its current value. It makes and deploys a
// new version and returns it.
func (s *Store) UpdateSettings(ctx context.Context, a Account, script string, bindings []Binding) (*apiv1.WorkerVersion, error) {
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.LatestVersion(ctx, a, script)
	if err != nil {
		return nil, err
	}
	var next []Binding
	names := map[string]bool{}
	for _, b := range bindings {
		if !bindingRE.MatchString(b.Name) {
			return nil, invalid("invalid binding name %q", b.Name)
		}
		if names[b.Name] {
			return nil, invalid("binding %q is listed twice", b.Name)
		}
		names[b.Name] = true
		if b.Type == apiv1.BindingSecretText && b.Text != nil {
			if err := ValidSecretName(b.Name); err != nil {
				return nil, err
			}
			next = append(next, b)
			continue
		}
		next = append(next, Binding{Name: b.Name, Type: BindingInherit})
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSettingsEditNotDeployed, settingsEditNotDeployed); err != nil {
		return nil, err
	}
	return s.deriveVersion(ctx, a, script, prev, derived{bindings: next, deploy: true})
}

// requireLatestDeployed refuses a secret change unless the newest deployment
// sends all traffic to the latest version, as Cloudflare does: the change is
// made to the latest version and deployed at 100%, which after a `versions
// upload`, a split or a rollback would silently deploy other code.
func (s *Store) requireLatestDeployed(ctx context.Context, a Account, script string, latest *apiv1.WorkerVersion, code int, msg string) error {
	rel, err := s.Release(ctx, a, script)
	if err != nil {
		return err
	}
	if d := rel.ActiveDeployment(); d != nil {
		for _, t := range d.Versions {
			if t.VersionID == latest.Spec.VersionID && t.Percentage == 100 {
				return nil
			}
		}
	}
	return Errorf(Invalid, code, "%s", msg)
}

// derived is how a secret or settings change makes its version from the
// previous one.
type derived struct {
	bindings []Binding
	// unbind drops these secret bindings; the stored values stay for the
	// versions that bind them.
	unbind      []string
	annotations map[string]string
	deploy      bool
}

// deriveVersion makes a new version from prev with other bindings (a secret
// change), keeping prev's code, compatibility settings and limits, and, when
// d.deploy, deploys it at 100 %. The caller holds the script's lock from
// before it read prev, so that no upload lands in between and is reverted.
func (s *Store) deriveVersion(ctx context.Context, a Account, script string, prev *apiv1.WorkerVersion, d derived) (*apiv1.WorkerVersion, error) {
	parts, err := s.LoadParts(ctx, prev)
	if err != nil {
		return nil, err
	}
	meta := Metadata{
		MainModule: prev.Spec.MainModule, BodyPart: prev.Spec.BodyPart, Bindings: d.bindings,
		CompatibilityDate: prev.Spec.CompatibilityDate, CompatibilityFlags: prev.Spec.CompatibilityFlags,
		Annotations: d.annotations, Limits: CPULimits(prev.Spec.Limits),
		KeepAssets: prev.Spec.Assets != nil,
	}
	v, _, err := s.createVersionLocked(ctx, a, script, VersionInput{
		Parts: parts, Metadata: meta, TriggeredBy: TriggerSecret, Deploy: d.deploy,
		unbind: d.unbind,
	})
	return v, err
}

// secretEdit turns a set of secret changes (a value sets, nil removes) into
// the bindings of the version derived from prev: every other binding is
// inherited. Removing a secret prev does not bind is refused unless
// lenient (Cloudflare's bulk endpoints ignore it).
func secretEdit(prev *apiv1.WorkerVersion, secrets map[string]*string, lenient bool) (bindings []Binding, removed []string, err error) {
	current := map[string]string{}
	for _, b := range prev.Spec.Bindings {
		current[b.Name] = b.Type
		if _, changed := secrets[b.Name]; !changed {
			bindings = append(bindings, Binding{Name: b.Name, Type: BindingInherit})
		}
	}
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		typ, bound := current[name]
		if bound && typ != apiv1.BindingSecretText {
			return nil, nil, invalid("binding %q is a %s binding, not a secret: change it in the Worker's configuration", name, typ)
		}
		value := secrets[name]
		if value == nil {
			if !bound {
				if lenient {
					continue
				}
				return nil, nil, Errorf(NotFound, CodeSecretNotFound, "secret %q not found", name)
			}
			removed = append(removed, name)
			continue
		}
		if err := ValidSecretName(name); err != nil {
			return nil, nil, err
		}
		bindings = append(bindings, Binding{Name: name, Type: apiv1.BindingSecretText, Text: value})
	}
	return bindings, removed, nil
}

// BulkSecrets is `wrangler secret bulk` (PATCH …/secrets-bulk, wrangler
// 4.93 and later): secrets with a value are set, those with nil removed, in
// one new version deployed at 100 %. Like every secret change it needs the
// latest version fully deployed.
func (s *Store) BulkSecrets(ctx context.Context, a Account, script string, secrets map[string]*string) (*apiv1.WorkerVersion, error) {
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.LatestVersion(ctx, a, script)
	if err != nil {
		return nil, err
	}
	bindings, removed, err := secretEdit(prev, secrets, true)
	if err != nil {
		return nil, err
	}
	if err := s.requireLatestDeployed(ctx, a, script, prev, CodeSecretEditNotDeployed, secretEditNotDeployed); err != nil {
		return nil, err
	}
	return s.deriveVersion(ctx, a, script, prev, derived{bindings: bindings, unbind: removed, deploy: true})
}

// NoVersionsCode is Cloudflare's code for a secret change on a Worker that
// has no uploaded version.
const NoVersionsCode = 10222

// PatchLatestVersion is `wrangler versions secret put/delete/bulk`
// (PATCH /workers/workers/:name/versions/latest, wrangler 4.113 and later):
// a new version made from the latest uploaded one, with secrets set (value)
// or unbound (nil) and the given annotations, not deployed. Its values are
// stored under keys of its own and an unbound secret keeps its stored value,
// so production is unchanged until the version is deployed.
func (s *Store) PatchLatestVersion(ctx context.Context, a Account, script string, secrets map[string]*string, annotations map[string]string) (*apiv1.WorkerVersion, error) {
	unlock := s.locks.lock(a, script)
	defer unlock()
	prev, err := s.LatestVersion(ctx, a, script)
	if IsNotFound(err, CodeNotFound) {
		if _, rerr := s.Release(ctx, a, script); rerr == nil {
			return nil, Errorf(NotFound, NoVersionsCode, "There are currently no uploaded versions of this Worker.")
		}
	}
	if err != nil {
		return nil, err
	}
	bindings, removed, err := secretEdit(prev, secrets, false)
	if err != nil {
		return nil, err
	}
	return s.deriveVersion(ctx, a, script, prev, derived{bindings: bindings, unbind: removed, annotations: annotations})
}
