package store

import (
	"context"
	"maps"
	"slices"

	apiv1 "github.com/octohq/octo/api/v1"
)

// CodeServiceBindingTarget refuses a service binding to a script the
// account does not have.
const CodeServiceBindingTarget = 10143

// checkBindingTargets refuses, as Cloudflare does at upload, a binding that
// names a KV namespace, R2 bucket, D1 database or script the account does
// not have. Only the bindings the upload names are checked (inherited and
// kept ones were checked when they were uploaded). A d1 binding given by
// database name is stored with the database's UUID.
func (s *Store) checkBindingTargets(ctx context.Context, a Account, script string, bindings []apiv1.WorkerBinding, uploaded []Binding) error {
	named := map[string]bool{}
	for _, b := range uploaded {
		named[b.Name] = b.Type != BindingInherit
	}
	for i := range bindings {
		b := &bindings[i]
		if !named[b.Name] {
			continue
		}
		switch b.Type {
		case apiv1.BindingKV:
			if _, err := s.kv.Namespace(ctx, a.ID, b.NamespaceID); IsNotFound(err, CodeKVNotFound) {
				return Errorf(Invalid, CodeKVBadNamespaceID, "KV namespace '%s' is not valid.", b.NamespaceID)
			} else if err != nil {
				return err
			}
		case apiv1.BindingR2:
			if s.r2 == nil {
				return invalid("r2_bucket binding %q: this octo has no R2 store", b.Name)
			}
			if _, err := s.r2.Bucket(ctx, a.ID, b.BucketName); IsNotFound(err, CodeR2NoSuchBucket) {
				return Errorf(Invalid, CodeR2NoSuchBucket,
					"R2 bucket '%s' (binding %s) does not exist in this account: create it with `wrangler r2 bucket create %s`", b.BucketName, b.Name, b.BucketName)
			} else if err != nil {
				return err
			}
		case apiv1.BindingD1:
			if s.d1s == nil {
				return invalid("d1 binding %q: this octo has no D1 store", b.Name)
			}
			db, err := s.d1s.Lookup(ctx, a.ID, b.DatabaseID)
			if IsNotFound(err, CodeD1NotFound) {
				return Errorf(Invalid, CodeD1NotFound,
					"D1 database '%s' (binding %s) does not exist in this account: create it with `wrangler d1 create <name>`", b.DatabaseID, b.Name)
			}
			if err != nil {
				return err
			}
			b.DatabaseID = db.UUID
		case apiv1.BindingService:
			if b.Service == script {
				continue
			}
			rel, err := s.FindRelease(ctx, a, b.Service)
			if err != nil {
				return err
			}
			if rel == nil {
				return Errorf(Invalid, CodeServiceBindingTarget,
					"Could not resolve service binding '%s'. Target script '%s' not found.", b.Name, b.Service)
			}
		}
	}
	return nil
}

// ServiceRefs are the scripts a script's active versions are bound to by
// service bindings, and the scripts whose active versions bind it.
type ServiceRefs struct {
	// Incoming are the other scripts whose active versions bind the script.
	Incoming []string
	// Outgoing are the scripts the script's active versions bind.
	Outgoing []string
}

// ServiceReferences finds script's service references among the active
// versions of the account's scripts (every version of its active
// deployment), each script once, by name.
func (s *Store) ServiceReferences(ctx context.Context, a Account, script string) (ServiceRefs, error) {
	releases, err := s.Releases(ctx, a)
	if err != nil {
		return ServiceRefs{}, err
	}
	versions, err := s.AccountVersions(ctx, a)
	if err != nil {
		return ServiceRefs{}, err
	}
	in, out := map[string]bool{}, map[string]bool{}
	for _, r := range releases {
		dep := r.ActiveDeployment()
		if dep == nil {
			continue
		}
		caller := r.Spec.ScriptName
		for _, v := range versions[caller] {
			if !slices.ContainsFunc(dep.Versions, func(t apiv1.VersionTraffic) bool { return t.VersionID == v.Spec.VersionID }) {
				continue
			}
			for _, b := range v.Spec.Bindings {
				switch {
				case b.Type != apiv1.BindingService || b.Service == caller:
				case b.Service == script:
					in[caller] = true
				case caller == script:
					out[b.Service] = true
				}
			}
		}
	}
	return ServiceRefs{Incoming: slices.Sorted(maps.Keys(in)), Outgoing: slices.Sorted(maps.Keys(out))}, nil
}
