package cfapi

import (
	"encoding/json"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
)

// The JSON shapes of the Workers API, as wrangler reads them
// (wrangler 4.86 reads these fields; see the handler tests for each shape).

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// wireBinding is a version's binding as the API shows it: no secret values.
func wireBinding(b apiv1.WorkerBinding) map[string]any {
	out := map[string]any{"name": b.Name, "type": b.Type}
	switch b.Type {
	case apiv1.BindingPlainText:
		out["text"] = b.Text
	case apiv1.BindingJSON:
		if b.JSON != nil {
			out["json"] = json.RawMessage(b.JSON.Raw)
		}
	case apiv1.BindingKV:
		out["namespace_id"] = b.NamespaceID
	case apiv1.BindingDurableObject:
		out["class_name"], out["namespace_id"] = b.ClassName, b.NamespaceID
	case apiv1.BindingWasmModule, apiv1.BindingTextBlob, apiv1.BindingDataBlob:
		out["part"] = b.Part
	case apiv1.BindingService:
		out["service"] = b.Service
		if b.Environment != "" {
			out["environment"] = b.Environment
		}
	}
	return out
}

func wireBindingList(v *apiv1.WorkerVersion) []map[string]any {
	out := []map[string]any{}
	if v == nil {
		return out
	}
	for _, b := range v.Spec.Bindings {
		out = append(out, wireBinding(b))
	}
	return out
}

// etag is the main module's digest.
func etag(v *apiv1.WorkerVersion) string {
	main := v.Spec.MainModule
	if main == "" {
		main = v.Spec.BodyPart
	}
	for _, m := range v.Spec.Modules {
		if m.Name == main {
			return m.SHA256[:32]
		}
	}
	return ""
}

func flags(v *apiv1.WorkerVersion) []string {
	if v.Spec.CompatibilityFlags == nil {
		return []string{}
	}
	return v.Spec.CompatibilityFlags
}

// limitsJSON is a version's script_runtime.limits: {"cpu_ms": N} when the
// upload set it. wrangler sends it back with the versions it makes from
// this one (`versions secret put`).
func limitsJSON(v *apiv1.WorkerVersion) map[string]any {
	if l := v.Spec.Limits; l != nil && l.CPUMs > 0 {
		return map[string]any{"cpu_ms": l.CPUMs}
	}
	return map[string]any{}
}

// versionJSON is GET …/versions/:id.
func versionJSON(v *apiv1.WorkerVersion) map[string]any {
	created := ts(v.Spec.CreatedAt.Time)
	annotations := map[string]string{}
	for k, val := range v.Spec.Annotations {
		annotations[k] = val
	}
	return map[string]any{
		"id":     v.Spec.VersionID,
		"number": v.Spec.Number,
		"metadata": map[string]any{
			"author_email": v.Spec.AuthorEmail, "author_id": v.Spec.AccountID,
			"created_on": created, "modified_on": created, "source": v.Spec.Source, "has_preview": true,
		},
		"annotations": annotations,
		"resources": map[string]any{
			"script":         map[string]any{"etag": etag(v), "handlers": v.Spec.Handlers, "last_deployed_from": "wrangler"},
			"script_runtime": map[string]any{"compatibility_date": v.Spec.CompatibilityDate, "compatibility_flags": flags(v), "usage_model": "standard", "limits": limitsJSON(v)},
			"bindings":       wireBindingList(v),
		},
		"startup_time_ms": v.Spec.StartupTimeMs,
	}
}

// deploymentJSON is one entry of GET …/deployments.
func deploymentJSON(d apiv1.ReleaseDeployment) map[string]any {
	versions := []map[string]any{}
	for _, v := range d.Versions {
		versions = append(versions, map[string]any{"version_id": v.VersionID, "percentage": v.Percentage})
	}
	annotations := d.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	return map[string]any{
		"id": d.ID, "created_on": ts(d.CreatedOn.Time), "source": d.Source, "strategy": string(d.Strategy),
		"author_email": d.AuthorEmail, "annotations": annotations, "versions": versions,
	}
}

// scriptJSON describes a script by its latest version.
func scriptJSON(script string, rel *apiv1.WorkerRelease, latest *apiv1.WorkerVersion) map[string]any {
	out := map[string]any{
		"id": script, "created_on": ts(rel.CreationTimestamp.Time), "modified_on": ts(rel.CreationTimestamp.Time),
		"usage_model": "standard", "handlers": []string{"fetch"}, "last_deployed_from": "wrangler",
		"tag": rel.UID, "tags": []string{},
	}
	if latest != nil {
		out["etag"] = etag(latest)
		out["modified_on"] = ts(latest.Spec.CreatedAt.Time)
		out["compatibility_date"] = latest.Spec.CompatibilityDate
		out["compatibility_flags"] = flags(latest)
		out["has_modules"] = latest.Spec.MainModule != ""
		if d := latest.Spec.DurableObjects; d != nil && d.MigrationTag != "" {
			// wrangler reads it to send only the migrations after it.
			out["migration_tag"] = d.MigrationTag
		}
	}
	return out
}
