package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	apiv1 "github.com/octohq/octo/api/v1"
)

// Migrations is metadata.migrations, as wrangler sends it: the tag the
// script must be at (old_tag), the tag it moves to (new_tag) and the steps
// in between; a single step may also be given inline.
type Migrations struct {
	OldTag string          `json:"old_tag"`
	NewTag string          `json:"new_tag"`
	Steps  []MigrationStep `json:"steps"`
	MigrationStep
}

// MigrationStep is one migration of Durable Object classes.
type MigrationStep struct {
	NewClasses       []string       `json:"new_classes"`
	NewSQLiteClasses []string       `json:"new_sqlite_classes"`
	RenamedClasses   []RenamedClass `json:"renamed_classes"`
	DeletedClasses   []string       `json:"deleted_classes"`
	// TransferredClasses move a class from another script: refused.
	TransferredClasses json.RawMessage `json:"transferred_classes"`
}

// RenamedClass is one entry of renamed_classes.
type RenamedClass struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Bounds of Durable Object classes: Cloudflare's tag length, and as many
// classes as a Worker may have bindings.
const (
	maxMigrationTag = 256
	maxClasses      = 256
	maxStepClasses  = 1024
)

func (s MigrationStep) empty() bool {
	return len(s.NewClasses)+len(s.NewSQLiteClasses)+len(s.RenamedClasses)+len(s.DeletedClasses) == 0 && !s.transfers()
}

func (s MigrationStep) transfers() bool {
	raw := strings.TrimSpace(string(s.TransferredClasses))
	return raw != "" && raw != "null" && raw != "[]"
}

// steps are the migration's steps in order, the inline one last.
func (m *Migrations) steps() []MigrationStep {
	out := slices.Clone(m.Steps)
	if !m.MigrationStep.empty() {
		out = append(out, m.MigrationStep)
	}
	return out
}

// empty reports whether m changes nothing (no migrations, or only tags).
func (m *Migrations) empty() bool {
	return m == nil || (len(m.steps()) == 0 && m.NewTag == "")
}

// validate checks the shape of the migrations: names, tags, bounds.
func (m *Migrations) validate() error {
	if m == nil {
		return nil
	}
	if len(m.OldTag) > maxMigrationTag || len(m.NewTag) > maxMigrationTag {
		return badUpload("migration tags are limited to %d characters", maxMigrationTag)
	}
	n := 0
	for _, st := range m.steps() {
		if st.transfers() {
			return invalid("transferred_classes migrations are not supported by octo yet: a class cannot move between scripts")
		}
		names := slices.Concat(st.NewClasses, st.NewSQLiteClasses, st.DeletedClasses)
		for _, r := range st.RenamedClasses {
			names = append(names, r.From, r.To)
		}
		n += len(names)
		for _, c := range names {
			if !bindingRE.MatchString(c) {
				return badUpload("Durable Object class %.64q in the migrations is not a JavaScript class name", c)
			}
		}
	}
	if n > maxStepClasses {
		return badUpload("the migrations name %d classes, at most %d", n, maxStepClasses)
	}
	return nil
}

// migrateObjects returns a script's Durable Object classes after m, from
// prev (the classes of its latest version; nil for none), as Cloudflare
// applies migrations: old_tag must be the script's current tag, a new class
// gets a new namespace (and storage), a renamed one keeps its namespace, a
// deleted one loses it. deploy is false for a version upload (POST
// versions), which may not migrate. It returns nil when the script has
// neither classes nor a tag.
func migrateObjects(prev *apiv1.VersionDurableObjects, m *Migrations, deploy bool) (*apiv1.VersionDurableObjects, error) {
	next := &apiv1.VersionDurableObjects{}
	if prev != nil {
		next = prev.DeepCopy()
	}
	if !m.empty() {
		if !deploy {
			return nil, Errorf(Invalid, CodeVersionedMigration,
				"Version upload failed. You attempted to upload a version of a Worker that includes a Durable Object migration, but migrations must be fully applied via a non-versioned deployment (wrangler deploy).")
		}
		if m.OldTag != next.MigrationTag {
			return nil, Errorf(Invalid, CodeMigrationTag,
				"Migration tag precondition failed; current tag is '%s', but the upload expects '%s'", next.MigrationTag, m.OldTag)
		}
		for _, st := range m.steps() {
			if err := applyStep(next, st); err != nil {
				return nil, err
			}
		}
		if m.NewTag != "" {
			next.MigrationTag = m.NewTag
		}
	}
	if len(next.Classes) > maxClasses {
		return nil, Errorf(Invalid, CodeObjectMigration, "a script has at most %d Durable Object classes, the migrations leave %d", maxClasses, len(next.Classes))
	}
	slices.SortFunc(next.Classes, func(a, b apiv1.DurableObjectClass) int { return strings.Compare(a.ClassName, b.ClassName) })
	if len(next.Classes) == 0 && next.MigrationTag == "" {
		return nil, nil
	}
	return next, nil
}

// applyStep applies one migration step to d.
func applyStep(d *apiv1.VersionDurableObjects, st MigrationStep) error {
	create := func(kind string, sqlite bool, names []string) error {
		for _, c := range names {
			if d.Class(c) != nil {
				return Errorf(Invalid, CodeObjectMigration, "Cannot apply %s migration to class '%s': the script already has a Durable Object class of that name", kind, c)
			}
			d.Classes = append(d.Classes, apiv1.DurableObjectClass{ClassName: c, NamespaceID: newNamespaceID(), SQLite: sqlite})
		}
		return nil
	}
	if err := create("new-class", false, st.NewClasses); err != nil {
		return err
	}
	if err := create("new-sqlite-class", true, st.NewSQLiteClasses); err != nil {
		return err
	}
	for _, r := range st.RenamedClasses {
		c := d.Class(r.From)
		if c == nil {
			return Errorf(Invalid, CodeObjectMigration, "Cannot apply rename-class migration to class '%s': the script has no Durable Object class of that name", r.From)
		}
		if d.Class(r.To) != nil {
			return Errorf(Invalid, CodeObjectMigration, "Cannot apply rename-class migration from '%s' to '%s': the script already has a class '%s'", r.From, r.To, r.To)
		}
		c.ClassName = r.To
	}
	for _, name := range st.DeletedClasses {
		if d.Class(name) == nil {
			return Errorf(Invalid, CodeObjectMigration, "Cannot apply delete-class migration to class '%s': the script has no Durable Object class of that name", name)
		}
		d.Classes = slices.DeleteFunc(d.Classes, func(c apiv1.DurableObjectClass) bool { return c.ClassName == name })
	}
	return nil
}

// newNamespaceID is a new Durable Object namespace ID: 32 hex digits.
func newNamespaceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// bindObjects checks the Durable Object bindings of a version against its
// script's classes and fills in their namespace IDs: a binding names a
// class a migration created.
func bindObjects(objects *apiv1.VersionDurableObjects, bindings []apiv1.WorkerBinding) error {
	for i := range bindings {
		b := &bindings[i]
		if b.Type != apiv1.BindingDurableObject {
			continue
		}
		c := objects.Class(b.ClassName)
		if c == nil {
			return Errorf(Invalid, CodeObjectBinding,
				"Cannot create binding for class '%s' because it is not currently configured to implement Durable Objects. Ensure a --new-class migration has been applied to it (binding %s).", b.ClassName, b.Name)
		}
		b.NamespaceID = c.NamespaceID
	}
	return nil
}

// checkObjectScripts refuses Durable Object bindings to another script's
// classes: octo runs a class in the pod of the script that defines it only.
func checkObjectScripts(script string, bindings []Binding) error {
	for _, b := range bindings {
		if b.Type == apiv1.BindingDurableObject && b.ScriptName != "" && b.ScriptName != script {
			return invalid("binding %q names Durable Object class %q of script %q: octo runs Durable Objects only for the script that defines them (no script_name yet)", b.Name, b.ClassName, b.ScriptName)
		}
	}
	return nil
}

// sameObjects reports whether two versions of a script have the same
// Durable Object classes (names and namespaces): a deployment may not mix
// or go back across a migration, whose storage would not match.
func sameObjects(a, b *apiv1.VersionDurableObjects) bool {
	var ac, bc []apiv1.DurableObjectClass
	if a != nil {
		ac = a.Classes
	}
	if b != nil {
		bc = b.Classes
	}
	return slices.Equal(ac, bc)
}
