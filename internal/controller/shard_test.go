package controller

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	apiv1 "github.com/octohq/octo/api/v1"
)

// scriptsOf lists the distinct scripts of a bundle, sorted.
func scriptsOf(b *apiv1.WorkerBundle) []string {
	var out []string
	for _, w := range b.Spec.Workers {
		if !slices.Contains(out, w.ScriptName) {
			out = append(out, w.ScriptName)
		}
	}
	slices.Sort(out)
	return out
}

// deployScript stores version n of script (a one-letter name) and a
// release serving it.
func (e *env) deployScript(script string, n int) string {
	e.t.Helper()
	id := uuidN(fmt.Sprintf("%08x", int(script[0])), n)
	v := workerVersion(acct, script, int64(n), id)
	v.Name = fmt.Sprintf("%s-v%d", script, n)
	e.create(v)
	var rel apiv1.WorkerRelease
	err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: script}, &rel)
	switch {
	case apierrors.IsNotFound(err):
		e.create(release(acct, script, deployment(uuidN("dddddddd", n), traffic(id, 100))))
	case err != nil:
		e.t.Fatal(err)
	default:
		rel.Spec.PushDeployment(deployment(uuidN("dddddddd", n), traffic(id, 100)))
		e.update(&rel)
	}
	return id
}

// A script keeps its bundle; new scripts fill the lowest bundle with room;
// a deploy changes one bundle only, and an emptied bundle goes away.
func TestShardedBundles(t *testing.T) {
	e := newEnv(t, account(acct, "b"))
	e.account.Options.WorkersPerBundle = 2
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		e.deployScript(s, 1)
	}
	e.reconcileAccount(acct)
	want := map[string][]string{"b": {"a", "b"}, "b-1": {"c", "d"}, "b-2": {"e"}}
	bundles := map[string]*apiv1.WorkerBundle{}
	for name, scripts := range want {
		var b apiv1.WorkerBundle
		e.get(name, &b)
		if got := scriptsOf(&b); !slices.Equal(got, scripts) {
			t.Errorf("%s runs %v, want %v", name, got, scripts)
		}
		if b.Labels[apiv1.LabelShard] == "" || b.Labels[apiv1.LabelAccount] != acct {
			t.Errorf("%s labels %v", name, b.Labels)
		}
		if w := b.Spec.Workers; len(w) == 0 || w[0].Port != 8081 {
			t.Errorf("%s workers %v: ports start at 8081 in every bundle", name, w)
		}
		bundles[name] = &b
	}

	// Redeploying c rewrites b-1 only.
	e.deployScript("c", 2)
	e.reconcileAccount(acct)
	for name, before := range bundles {
		var b apiv1.WorkerBundle
		e.get(name, &b)
		if changed := b.ResourceVersion != before.ResourceVersion; changed != (name == "b-1") {
			t.Errorf("%s changed=%v after a deploy of c", name, changed)
		}
	}

	// Deleting a frees a place in shard 0; the next new script takes it, and
	// nothing else moves.
	var rel apiv1.WorkerRelease
	e.get("a", &rel)
	if err := e.c.Delete(context.Background(), &rel); err != nil {
		t.Fatal(err)
	}
	e.deployScript("f", 1)
	e.reconcileAccount(acct)
	for name, scripts := range map[string][]string{"b": {"b", "f"}, "b-1": {"c", "d"}, "b-2": {"e"}} {
		var b apiv1.WorkerBundle
		e.get(name, &b)
		if got := scriptsOf(&b); !slices.Equal(got, scripts) {
			t.Errorf("after delete+add: %s runs %v, want %v", name, got, scripts)
		}
	}

	// Deleting e empties b-2: it is deleted.
	e.get("e", &rel)
	if err := e.c.Delete(context.Background(), &rel); err != nil {
		t.Fatal(err)
	}
	e.reconcileAccount(acct)
	var gone apiv1.WorkerBundle
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "b-2"}, &gone); !apierrors.IsNotFound(err) {
		t.Errorf("empty bundle b-2: %v, want deleted", err)
	}
}

// A release is Ready when the bundle of its shard is, whatever the others.
func TestShardReadinessPerRelease(t *testing.T) {
	e := newEnv(t, account(acct, "b"))
	e.account.Options.WorkersPerBundle = 1
	e.deployScript("a", 1)
	e.deployScript("b", 1)
	e.reconcileAccount(acct)
	// Only shard 0 ("b", script a) is built and rolled out.
	e.buildAndRollOut("b")
	e.reconcileAccount(acct)

	ready := func(script string) bool {
		var rel apiv1.WorkerRelease
		e.get(script, &rel)
		return meta.IsStatusConditionTrue(rel.Status.Conditions, apiv1.ConditionReady)
	}
	if !ready("a") || ready("b") {
		t.Errorf("ready a=%v b=%v, want true false", ready("a"), ready("b"))
	}
	var a apiv1.WorkerAccount
	e.get(acct, &a)
	if meta.IsStatusConditionTrue(a.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("account Ready while bundle b-1 is not rolled out: %+v", a.Status.Conditions)
	}

	e.buildAndRollOut("b-1")
	e.reconcileAccount(acct)
	e.get(acct, &a)
	if !ready("b") || !meta.IsStatusConditionTrue(a.Status.Conditions, apiv1.ConditionReady) {
		t.Errorf("after b-1 rolled out: release b ready=%v, account %+v", ready("b"), a.Status.Conditions)
	}
}

// A build its bundle has moved past is not run; the current one is.
func TestSupersededBuildIsSkipped(t *testing.T) {
	e := newEnv(t, account(acct, "b"))
	e.deployScript("a", 1)
	e.reconcileAccount(acct)
	e.reconcileBundle("b")
	var b apiv1.WorkerBundle
	e.get("b", &b)
	first := b.Status.JobBuilderName
	e.deployScript("a", 2)
	e.reconcileAccount(acct)
	e.reconcileBundle("b")
	e.get("b", &b)
	second := b.Status.JobBuilderName
	if first == "" || second == "" || first == second {
		t.Fatalf("JobBuilders %q then %q, want two", first, second)
	}
	e.reconcileJobBuilder(first)
	if n := e.b.count(); n != 0 {
		t.Errorf("%d builds after reconciling the superseded JobBuilder %s, want 0", n, first)
	}
	e.reconcileJobBuilder(second)
	if n := e.b.count(); n != 1 {
		t.Errorf("%d builds after reconciling the current JobBuilder %s, want 1", n, second)
	}
	if got := bundleBuild(context.Background(), &b); len(got) != 1 || got[0].Name != second {
		t.Errorf("a bundle enqueues %v, want its current build %s", got, second)
	}
}

// fakePuller records the images it is asked to pull.
type fakePuller struct{ pulled chan string }

func (p fakePuller) Pull(_ context.Context, image string) error {
	p.pulled <- image
	return nil
}

// A successful build is pulled onto the node right away.
func TestBuiltImageIsPulled(t *testing.T) {
	e := newEnv(t, account(acct, "b"))
	p := fakePuller{pulled: make(chan string, 1)}
	e.jb.Options.Puller = p
	e.deployScript("a", 1)
	e.reconcileAccount(acct)
	e.buildAndRollOut("b")
	var b apiv1.WorkerBundle
	e.get("b", &b)
	select {
	case img := <-p.pulled:
		if img == "" || img != b.Status.Image {
			t.Errorf("pulled %q, want the bundle's image %q", img, b.Status.Image)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the built image was not pulled")
	}
}
