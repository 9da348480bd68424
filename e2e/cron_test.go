//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/octohq/octo/api/v1"
)

// cronWait bounds the wait for a scheduled run: the trigger fires every
// minute; the first run may wait for the version's pod.
const cronWait = 150 * time.Second

// cronTriggers is TestWorkers' cron step: `wrangler deploy` with
// triggers.crons stores the schedule, the operators call the Worker's
// scheduled handler at the minute (it writes to KV what its fetch handler
// answers), the run shows in `wrangler tail` (event.cron and the handler's
// console.log) and in the release's status, and `wrangler triggers deploy`
// with no crons stops it.
func cronTriggers(t *testing.T, w *wranglerCLI, g *gatewayClient, vars map[string]string, dir string) {
	out := w.must(t, dir, "", "deploy")
	if !strings.Contains(out, "schedule: * * * * *") {
		t.Errorf("wrangler deploy printed no schedule:\n%s", out)
	}
	c := newCluster(t, vars)
	if rel := c.release(t, "e2e-cron"); rel == nil || len(rel.Spec.Schedules) != 1 || rel.Spec.Schedules[0].Cron != "* * * * *" {
		t.Fatalf("release schedules = %+v, want [* * * * *]", rel)
	}
	g.waitBody(t, "e2e-cron", "/", "never")

	// Tail from now: a run while someone tails goes to the traced twin.
	ctx, cancel := context.WithTimeout(context.Background(), cronWait+30*time.Second)
	defer cancel()
	cmd := w.command(ctx, "tail", "e2e-cron", "--format", "json")
	cmd.Dir = dir
	var tail syncBuffer
	cmd.Stdout, cmd.Stderr = &tail, &tail
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()

	start := time.Now()
	var ran string
	for deadline := start.Add(cronWait); ; time.Sleep(time.Second) {
		if _, body, _ := g.get("e2e-cron", "/"); body != "never" && body != "" && strings.Contains(tail.String(), `"cron"`) && strings.Contains(tail.String(), "e2e-cron ran") {
			ran = body
			break
		}
		if time.Now().After(deadline) {
			_, body, _ := g.get("e2e-cron", "/")
			t.Fatalf("no scheduled run seen by the Worker and the tail within %s: the Worker answers %q; status %+v; tail:\n%s",
				cronWait, body, c.release(t, "e2e-cron").Status.Cron, tail.String())
		}
	}
	t.Logf("first scheduled run seen after %s", time.Since(start).Round(time.Second))
	cron, at, _ := strings.Cut(ran, "|")
	ms, err := strconv.ParseInt(at, 10, 64)
	if cron != "* * * * *" || err != nil || ms%60000 != 0 {
		t.Errorf("the run wrote %q, want the cron and a scheduledTime on a whole minute", ran)
	}
	if s := tail.String(); !strings.Contains(s, "e2e-cron ran * * * * *") || !strings.Contains(s, `"scheduledTime"`) {
		t.Errorf("wrangler tail lacks the run's console.log or scheduledTime:\n%s", s)
	}
	var runs []apiv1.CronRun
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		if st := c.release(t, "e2e-cron").Status.Cron; st != nil && len(st.Runs) > 0 {
			runs = st.Runs
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the release's status.cron records no run")
		}
	}
	if r := runs[0]; r.Outcome != "ok" || r.Cron != "* * * * *" || r.VersionID == "" {
		t.Errorf("latest run = %+v, want ok with its version", r)
	}
	checkNoRepeatedRun(t, runs)

	// `wrangler triggers deploy` with no crons removes the trigger.
	cfg := filepath.Join(dir, "wrangler.toml")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `crons = ["* * * * *"]`, `crons = []`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, dir, "", "triggers", "deploy")
	if rel := c.release(t, "e2e-cron"); len(rel.Spec.Schedules) != 0 {
		t.Errorf("after triggers deploy with no crons the release has %+v", rel.Spec.Schedules)
	}
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, dir, "", "triggers", "deploy")
}

// checkNoRepeatedRun fails when two recorded runs share a cron and a time.
func checkNoRepeatedRun(t *testing.T, runs []apiv1.CronRun) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range runs {
		k := r.Cron + "@" + r.ScheduledTime.UTC().String()
		if seen[k] {
			t.Errorf("the run of %s ran twice: %+v", k, runs)
		}
		seen[k] = true
	}
}

// cronSurvived is the down-up check: the trigger still fires after `octo
// up`, and no time ran twice.
func cronSurvived(t *testing.T, g *gatewayClient, vars map[string]string) {
	c := newCluster(t, vars)
	before := c.release(t, "e2e-cron").Status.Cron
	if before == nil || before.LastScheduledTime == nil {
		t.Fatalf("no run recorded before down/up: %+v", before)
	}
	for deadline := time.Now().Add(cronWait); ; time.Sleep(2 * time.Second) {
		st := c.release(t, "e2e-cron").Status.Cron
		if st != nil && len(st.Runs) > 0 && st.Runs[0].ScheduledTime.After(before.LastScheduledTime.Time) && st.Runs[0].Outcome == "ok" {
			checkNoRepeatedRun(t, st.Runs)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run after octo up within %s: %+v", cronWait, st)
		}
	}
}
