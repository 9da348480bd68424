package store

import (
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
)

// TestMigrateObjects applies migrations as Cloudflare does: tags must
// follow on, a renamed class keeps its namespace (and so its objects), a
// deleted one loses it, and a refusal says why with Cloudflare's code.
func TestMigrateObjects(t *testing.T) {
	v1, err := migrateObjects(nil, &Migrations{NewTag: "v1", MigrationStep: MigrationStep{NewSQLiteClasses: []string{"Counter"}, NewClasses: []string{"Legacy"}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	counter, legacy := v1.Class("Counter"), v1.Class("Legacy")
	if v1.MigrationTag != "v1" || counter == nil || !counter.SQLite || legacy == nil || legacy.SQLite || len(counter.NamespaceID) != 32 || counter.NamespaceID == legacy.NamespaceID {
		t.Fatalf("after v1: %+v", v1)
	}
	// No migrations: the classes carry over unchanged (a redeploy, a secret).
	same, err := migrateObjects(v1, nil, false)
	if err != nil || same.MigrationTag != "v1" || same.Class("Counter").NamespaceID != counter.NamespaceID {
		t.Fatalf("carried over: %+v, %v", same, err)
	}
	v3, err := migrateObjects(v1, &Migrations{OldTag: "v1", NewTag: "v3", Steps: []MigrationStep{
		{RenamedClasses: []RenamedClass{{From: "Counter", To: "Tally"}}},
		{DeletedClasses: []string{"Legacy"}},
	}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if v3.MigrationTag != "v3" || len(v3.Classes) != 1 || v3.Class("Tally") == nil || v3.Class("Tally").NamespaceID != counter.NamespaceID || !v3.Class("Tally").SQLite {
		t.Fatalf("after v3: %+v", v3)
	}
	if v1.Class("Counter") == nil {
		t.Error("migrating changed the previous version's classes")
	}
	for name, tc := range map[string]struct {
		prev   *apiv1.VersionDurableObjects
		m      *Migrations
		deploy bool
		code   int
	}{
		"stale old tag":       {v1, &Migrations{OldTag: "v0", NewTag: "v2", MigrationStep: MigrationStep{NewClasses: []string{"B"}}}, true, CodeMigrationTag},
		"all over again":      {v1, &Migrations{NewTag: "v1", MigrationStep: MigrationStep{NewSQLiteClasses: []string{"Counter"}}}, true, CodeMigrationTag},
		"class exists":        {v1, &Migrations{OldTag: "v1", NewTag: "v2", MigrationStep: MigrationStep{NewSQLiteClasses: []string{"Counter"}}}, true, CodeObjectMigration},
		"rename of no class":  {v1, &Migrations{OldTag: "v1", NewTag: "v2", MigrationStep: MigrationStep{RenamedClasses: []RenamedClass{{From: "X", To: "Y"}}}}, true, CodeObjectMigration},
		"rename onto a class": {v1, &Migrations{OldTag: "v1", NewTag: "v2", MigrationStep: MigrationStep{RenamedClasses: []RenamedClass{{From: "Counter", To: "Legacy"}}}}, true, CodeObjectMigration},
		"delete of no class":  {v1, &Migrations{OldTag: "v1", NewTag: "v2", MigrationStep: MigrationStep{DeletedClasses: []string{"X"}}}, true, CodeObjectMigration},
		"in a version upload": {v1, &Migrations{OldTag: "v1", NewTag: "v2", MigrationStep: MigrationStep{NewClasses: []string{"B"}}}, false, CodeVersionedMigration},
		"first in a version":  {nil, &Migrations{NewTag: "v1", MigrationStep: MigrationStep{NewClasses: []string{"B"}}}, false, CodeVersionedMigration},
	} {
		_, err := migrateObjects(tc.prev, tc.m, tc.deploy)
		if e, ok := err.(*Error); !ok || e.Code != tc.code {
			t.Errorf("%s: %v, want code %d", name, err, tc.code)
		}
	}
}

// TestBindObjects: a binding names a class of the script and gets its
// namespace; any other is refused with 10061.
func TestBindObjects(t *testing.T) {
	objects := &apiv1.VersionDurableObjects{Classes: []apiv1.DurableObjectClass{{ClassName: "Counter", NamespaceID: "0123456789abcdef0123456789abcdef"}}}
	bindings := []apiv1.WorkerBinding{{Name: "C", Type: apiv1.BindingDurableObject, ClassName: "Counter"}, {Name: "V", Type: apiv1.BindingPlainText}}
	if err := bindObjects(objects, bindings); err != nil || bindings[0].NamespaceID != objects.Classes[0].NamespaceID {
		t.Fatalf("bindObjects = %v, %+v", err, bindings)
	}
	for _, objs := range []*apiv1.VersionDurableObjects{nil, {}} {
		err := bindObjects(objs, []apiv1.WorkerBinding{{Name: "C", Type: apiv1.BindingDurableObject, ClassName: "Counter"}})
		if e, ok := err.(*Error); !ok || e.Code != CodeObjectBinding {
			t.Errorf("binding without the class: %v, want code %d", err, CodeObjectBinding)
		}
	}
	if err := checkObjectScripts("me", []Binding{{Name: "C", Type: apiv1.BindingDurableObject, ClassName: "C", ScriptName: "me"}}); err != nil {
		t.Errorf("a binding naming its own script: %v", err)
	}
	if err := checkObjectScripts("me", []Binding{{Name: "C", Type: apiv1.BindingDurableObject, ClassName: "C", ScriptName: "other"}}); err == nil {
		t.Error("a binding to another script's class was accepted")
	}
}
