package store

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

// ErrNotLoadable is wrapped by LoaderCode when the version exists but the
// loader cannot run it (workerd.Loadable).
var ErrNotLoadable = errors.New("not loadable")

// LoaderCode returns what a bundle pod's loader host needs to run version
// id of script in account accountID: its modules from S3 and its secrets'
// values (docs/adr/0007). A missing account, script or version is a
// NotFound refusal; a version the loader cannot run wraps ErrNotLoadable.
func (s *Store) LoaderCode(ctx context.Context, accountID, script, id string) (workerd.LoaderCode, error) {
	a, err := FindAccount(ctx, s.accounts, accountID)
	if err != nil {
		return workerd.LoaderCode{}, err
	}
	v, err := s.Version(ctx, a, script, id)
	if err != nil {
		return workerd.LoaderCode{}, err
	}
	return s.VersionCode(ctx, v)
}

// VersionCode is LoaderCode of a version already read: its modules from S3
// and the values of its secrets from its namespace.
func (s *Store) VersionCode(ctx context.Context, v *apiv1.WorkerVersion) (workerd.LoaderCode, error) {
	script := v.Spec.ScriptName
	if err := workerd.Loadable(v); err != nil {
		return workerd.LoaderCode{}, fmt.Errorf("%w: %w", ErrNotLoadable, err)
	}
	modules := map[string][]byte{}
	for _, m := range v.Spec.Modules {
		if m.Type == apiv1.ModuleSourceMap {
			continue
		}
		data, _, err := s.blobs.Get(ctx, StoredModuleKey(v.Spec.Storage.Prefix, m))
		if err != nil {
			return workerd.LoaderCode{}, fmt.Errorf("read module %s of version %s: %w", m.Name, v.Spec.VersionID, err)
		}
		modules[m.Name] = data
	}
	secrets := map[string]string{}
	read := map[string]map[string][]byte{} // Secret name → its data
	for _, b := range v.Spec.Bindings {
		if b.Type != apiv1.BindingSecretText {
			continue
		}
		// As the pods' environment has it (controller.secretEnv).
		name := SecretName(script)
		if b.SecretRef != nil {
			name = b.SecretRef.Name
		}
		data, ok := read[name]
		if !ok {
			var sec corev1.Secret
			err := s.k8s.Get(ctx, client.ObjectKey{Namespace: v.Namespace, Name: name}, &sec)
			if err != nil && !apierrors.IsNotFound(err) {
				return workerd.LoaderCode{}, fmt.Errorf("get secrets of %s: %w", script, err)
			}
			data, read[name] = sec.Data, sec.Data
		}
		if val, ok := data[b.SecretKey()]; ok {
			secrets[b.Name] = string(val)
		}
	}
	return workerd.NewLoaderCode(v, modules, secrets)
}
