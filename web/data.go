package web

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/gateway"
	"github.com/octohq/octo/internal/metrics"
	"github.com/octohq/octo/internal/store"
	"github.com/octohq/octo/internal/workerlogs"
)

// account is one account as the dashboard shows it.
type account struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Subdomain string `json:"subdomain"`
	Namespace string `json:"namespace"`
	Default   bool   `json:"default,omitempty"`
	// of is the store's account.
	of store.Account
}

// accounts lists the accounts of the store, the default one first, then by name.
func (d *Dashboard) accounts(ctx context.Context) ([]account, error) {
	all, err := d.opts.Store.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]account, 0, len(all))
	for _, a := range all {
		out = append(out, account{ID: a.ID, Name: a.Name, Subdomain: a.Subdomain, Namespace: a.Namespace,
			Default: a.ID == d.opts.DefaultAccount.ID, of: a})
	}
	slices.SortFunc(out, func(a, b account) int {
		if a.Default != b.Default {
			if a.Default {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// findAccount returns the account with id, or a 404.
func (d *Dashboard) findAccount(ctx context.Context, id string) (account, error) {
	all, err := d.accounts(ctx)
	if err != nil {
		return account{}, err
	}
	for _, a := range all {
		if a.ID == id {
			return a, nil
		}
	}
	return account{}, fail(http.StatusNotFound, "no account %q", id)
}

// releases returns an account's scripts, by name.
func (d *Dashboard) releases(ctx context.Context, a account) ([]apiv1.WorkerRelease, error) {
	return d.opts.Store.Releases(ctx, a.of)
}

// release returns one script's release, or a 404.
func (d *Dashboard) release(ctx context.Context, a account, script string) (*apiv1.WorkerRelease, error) {
	if store.ValidScriptName(script) != nil {
		return nil, fail(http.StatusBadRequest, "invalid script name %q", script)
	}
	rel, err := d.opts.Store.FindRelease(ctx, a.of, script)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, fail(http.StatusNotFound, "no worker %q in account %s", script, a.Name)
	}
	return rel, nil
}

// versions returns the versions of an account's scripts, by script, oldest
// first; script "" means every script.
func (d *Dashboard) versions(ctx context.Context, a account, script string) (map[string][]apiv1.WorkerVersion, error) {
	if script == "" {
		return d.opts.Store.AccountVersions(ctx, a.of)
	}
	vs, err := d.opts.Store.Versions(ctx, a.of, script)
	if err != nil {
		return nil, err
	}
	return map[string][]apiv1.WorkerVersion{script: vs}, nil
}

// jobBuilders returns the JobBuilders of a namespace (all namespaces for
// ""), newest first.
func (d *Dashboard) jobBuilders(ctx context.Context, namespace string) ([]apiv1.JobBuilder, error) {
	var list apiv1.JobBuilderList
	var opts []client.ListOption
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := d.opts.Reader.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("list JobBuilders: %w", err)
	}
	slices.SortFunc(list.Items, func(a, b apiv1.JobBuilder) int {
		return cmp.Or(b.CreationTimestamp.Compare(a.CreationTimestamp.Time), cmp.Compare(b.Name, a.Name))
	})
	return list.Items, nil
}

// bundles returns the WorkerBundles of a namespace ("" = all), by name.
func (d *Dashboard) bundles(ctx context.Context, namespace string) ([]apiv1.WorkerBundle, error) {
	var list apiv1.WorkerBundleList
	var opts []client.ListOption
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := d.opts.Reader.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("list WorkerBundles: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

// ---------------------------------------------------------------------------
// Overview

type counts struct {
	Accounts int `json:"accounts"`
	Workers  int `json:"workers"`
	Versions int `json:"versions"`
	Builds   int `json:"builds"`
}

type overviewJSON struct {
	Status
	Healthy bool   `json:"healthy"`
	Counts  counts `json:"counts"`
	// EnvVars are the names of the variables EnvCommand sets; their values
	// (the API token, the S3 keys) are never sent.
	EnvVars      []string `json:"envVars"`
	EnvCommand   string   `json:"envCommand"`
	DashboardURL string   `json:"dashboardURL"`
	APIURL       string   `json:"apiURL"`
	// Subdomain and Account are the default account's.
	Account   string `json:"account"`
	Subdomain string `json:"subdomain"`
	// Metrics are the requests of every Worker, by minute over the last
	// hour; nil without metrics.
	Metrics *workerMetricsJSON `json:"metrics,omitempty"`
	// Usage is the CPU and memory of every Worker's pods over the last
	// hour; nil when none is sampled.
	Usage *usageJSON `json:"usage,omitempty"`
}

// EnvCommand is what the overview tells to run for the values of the
// variables: only root can read them.
const EnvCommand = `eval "$(sudo octo env)"`

// EnvNames returns the variable names of `octo env` lines: "export
// NAME='value'" (or "NAME=value") gives NAME, never the value. Any other
// line is left out.
func EnvNames(lines []string) []string {
	out := []string{}
	for _, l := range lines {
		name, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "export "), "=")
		if ok && validEnvName(name) {
			out = append(out, name)
		}
	}
	return out
}

// validEnvName: a shell variable name, [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

func (d *Dashboard) overview(c echo.Context) error {
	ctx := c.Request().Context()
	out := overviewJSON{
		Status: Status{State: "unknown", Parts: []Part{}}, EnvVars: []string{}, EnvCommand: EnvCommand,
		DashboardURL: d.URL(), APIURL: d.opts.APIURL,
		Account: d.opts.DefaultAccount.ID, Subdomain: d.opts.DefaultAccount.Subdomain,
		Metrics: d.workerMetrics(ctx, "", "", "1h"), // every Worker
		Usage:   d.workerUsage(ctx, true, nil, "1h"),
	}
	if d.opts.Status != nil {
		out.Status = d.opts.Status()
		if out.Parts == nil {
			out.Parts = []Part{}
		}
	}
	out.Healthy = len(out.Parts) > 0
	for _, p := range out.Parts {
		if p.State != ReadyState {
			out.Healthy = false
		}
	}
	if d.opts.Env != nil {
		out.EnvVars = append(out.EnvVars, EnvNames(d.opts.Env())...)
	}
	accts, err := d.accounts(ctx)
	if err != nil {
		return err
	}
	out.Counts.Accounts = len(accts)
	for _, a := range accts {
		rels, err := d.releases(ctx, a)
		if err != nil {
			return err
		}
		out.Counts.Workers += len(rels)
		vs, err := d.versions(ctx, a, "")
		if err != nil {
			return err
		}
		for _, l := range vs {
			out.Counts.Versions += len(l)
		}
	}
	jbs, err := d.jobBuilders(ctx, "")
	if err != nil {
		return err
	}
	out.Counts.Builds = len(jbs)
	return c.JSON(http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Workers

type trafficJSON struct {
	VersionID  string `json:"versionID"`
	Number     int64  `json:"number,omitempty"`
	Percentage int32  `json:"percentage"`
}

type deploymentJSON struct {
	ID          string        `json:"id"`
	CreatedOn   time.Time     `json:"createdOn"`
	Source      string        `json:"source,omitempty"`
	Author      string        `json:"author,omitempty"`
	Message     string        `json:"message,omitempty"`
	TriggeredBy string        `json:"triggeredBy,omitempty"`
	Versions    []trafficJSON `json:"versions"`
	Active      bool          `json:"active"`
}

type buildStateJSON struct {
	// Phase is the JobBuilder's phase, "Failed" when the active version was
	// left out of the bundle, or "Waiting" when no build includes it yet.
	Phase      string `json:"phase"`
	JobBuilder string `json:"jobBuilder,omitempty"`
	Message    string `json:"message,omitempty"`
}

type workerJSON struct {
	Script     string          `json:"script"`
	URL        string          `json:"url"`
	Deployment *deploymentJSON `json:"deployment"`
	LastDeploy *time.Time      `json:"lastDeploy"`
	Versions   int             `json:"versions"`
	Build      buildStateJSON  `json:"build"`
	// Ready is the WorkerRelease's Ready condition: the active deployment
	// is served.
	Ready   bool   `json:"ready"`
	Message string `json:"message,omitempty"`
}

type accountWorkersJSON struct {
	account
	Workers []workerJSON `json:"workers"`
}

func numbers(vs []apiv1.WorkerVersion) map[string]int64 {
	m := make(map[string]int64, len(vs))
	for _, v := range vs {
		m[v.Spec.VersionID] = v.Spec.Number
	}
	return m
}

func toDeployment(dep apiv1.ReleaseDeployment, nums map[string]int64, active bool) deploymentJSON {
	out := deploymentJSON{
		ID: dep.ID, CreatedOn: dep.CreatedOn.Time, Source: dep.Source, Author: dep.AuthorEmail,
		Message: dep.Annotations[apiv1.AnnotationMessage], TriggeredBy: dep.Annotations[apiv1.AnnotationTriggeredBy],
		Versions: []trafficJSON{}, Active: active,
	}
	for _, v := range dep.Versions {
		out.Versions = append(out.Versions, trafficJSON{VersionID: v.VersionID, Number: nums[v.VersionID], Percentage: v.Percentage})
	}
	return out
}

func condition(conds []metav1.Condition, typ string) (metav1.Condition, bool) {
	for _, c := range conds {
		if c.Type == typ {
			return c, true
		}
	}
	return metav1.Condition{}, false
}

// buildState says how far the images of a script's active deployment are.
func buildState(rel *apiv1.WorkerRelease, jbs []apiv1.JobBuilder, bundles []apiv1.WorkerBundle) buildStateJSON {
	dep := rel.ActiveDeployment()
	if dep == nil {
		return buildStateJSON{Phase: "Waiting", Message: "not deployed"}
	}
	for _, b := range bundles {
		if b.Spec.AccountID != rel.Spec.AccountID {
			continue
		}
		for _, f := range b.Status.FailedWorkers {
			for _, v := range dep.Versions {
				if f.ScriptName == rel.Spec.ScriptName && f.VersionID == v.VersionID {
					return buildStateJSON{Phase: string(apiv1.JobBuilderFailed), JobBuilder: b.Status.JobBuilderName, Message: f.Message}
				}
			}
		}
	}
	for _, jb := range jbs { // newest first
		if jb.Spec.AccountID != "" && jb.Spec.AccountID != rel.Spec.AccountID {
			continue
		}
		all := true
		for _, v := range dep.Versions {
			if !slices.ContainsFunc(jb.Spec.Inputs, func(in apiv1.BuildInput) bool { return in.VersionID == v.VersionID }) {
				all = false
			}
		}
		if all {
			return buildStateJSON{Phase: cmp.Or(string(jb.Status.Phase), string(apiv1.JobBuilderPending)), JobBuilder: jb.Name, Message: jb.Status.Message}
		}
	}
	return buildStateJSON{Phase: "Waiting", Message: "no build includes the active deployment yet"}
}

func (d *Dashboard) toWorker(a account, rel *apiv1.WorkerRelease, vs []apiv1.WorkerVersion, jbs []apiv1.JobBuilder, bundles []apiv1.WorkerBundle) workerJSON {
	w := workerJSON{
		Script: rel.Spec.ScriptName, URL: gateway.URL(rel.Spec.ScriptName, a.Subdomain, d.opts.EdgePort),
		Versions: len(vs), Build: buildState(rel, jbs, bundles),
	}
	if dep := rel.ActiveDeployment(); dep != nil {
		dj := toDeployment(*dep, numbers(vs), true)
		w.Deployment = &dj
		t := dep.CreatedOn.Time
		w.LastDeploy = &t
	}
	if c, ok := condition(rel.Status.Conditions, apiv1.ConditionReady); ok {
		w.Ready = c.Status == "True"
		w.Message = c.Message
	}
	return w
}

func (d *Dashboard) workers(c echo.Context) error {
	ctx := c.Request().Context()
	accts, err := d.accounts(ctx)
	if err != nil {
		return err
	}
	jbs, err := d.jobBuilders(ctx, "")
	if err != nil {
		return err
	}
	bundles, err := d.bundles(ctx, "")
	if err != nil {
		return err
	}
	out := struct {
		Accounts []accountWorkersJSON `json:"accounts"`
	}{Accounts: []accountWorkersJSON{}}
	for _, a := range accts {
		rels, err := d.releases(ctx, a)
		if err != nil {
			return err
		}
		vs, err := d.versions(ctx, a, "")
		if err != nil {
			return err
		}
		aw := accountWorkersJSON{account: a, Workers: []workerJSON{}}
		for i := range rels {
			aw.Workers = append(aw.Workers, d.toWorker(a, &rels[i], vs[rels[i].Spec.ScriptName], jbs, bundles))
		}
		out.Accounts = append(out.Accounts, aw)
	}
	return c.JSON(http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Worker page

type moduleJSON struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// bindingJSON is a binding without any secret: a secret binding says
// Secret and has no Value (the dashboard never reads Secrets).
type bindingJSON struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Value  string `json:"value,omitempty"`
	Secret bool   `json:"secret,omitempty"`
}

type versionJSON struct {
	ID                 string        `json:"id"`
	Number             int64         `json:"number"`
	CreatedAt          time.Time     `json:"createdAt"`
	Message            string        `json:"message,omitempty"`
	Tag                string        `json:"tag,omitempty"`
	TriggeredBy        string        `json:"triggeredBy,omitempty"`
	Source             string        `json:"source,omitempty"`
	Phase              string        `json:"phase,omitempty"`
	StatusMessage      string        `json:"statusMessage,omitempty"`
	CompatibilityDate  string        `json:"compatibilityDate,omitempty"`
	CompatibilityFlags []string      `json:"compatibilityFlags"`
	StartupTimeMs      int64         `json:"startupTimeMs,omitempty"`
	Modules            []moduleJSON  `json:"modules"`
	Bindings           []bindingJSON `json:"bindings"`
	// Percentage is the version's share of the active deployment (0 when
	// it is not deployed).
	Percentage int32 `json:"percentage"`
	// Assets are the version's static assets, if any.
	Assets *assetsJSON `json:"assets,omitempty"`
}

// assetsJSON is how a version serves its static assets.
type assetsJSON struct {
	Files            int32  `json:"files"`
	HTMLHandling     string `json:"htmlHandling,omitempty"`
	NotFoundHandling string `json:"notFoundHandling,omitempty"`
	Binding          string `json:"binding,omitempty"`
	AssetsOnly       bool   `json:"assetsOnly,omitempty"`
}

type workerPageJSON struct {
	Account     account          `json:"account"`
	Worker      workerJSON       `json:"worker"`
	Versions    []versionJSON    `json:"versions"`
	Deployments []deploymentJSON `json:"deployments"`
	Cron        cronJSON         `json:"cron"`
	// Metrics are the Worker's requests over the chosen window; nil when
	// the dashboard has no metrics.
	Metrics *workerMetricsJSON `json:"metrics,omitempty"`
	// Usage is the CPU and memory of the pods that run it, over the same
	// window; nil when the dashboard samples none.
	Usage *usageJSON `json:"usage,omitempty"`
}

// workerMetricsJSON is a Worker's requests over a window: one entry per
// minute (or per hour for the day), oldest first, and the totals.
type workerMetricsJSON struct {
	// Window is "1h" or "24h"; Step is the seconds each point covers.
	Window string             `json:"window"`
	Step   int64              `json:"step"`
	From   time.Time          `json:"from"`
	Points []metricsPointJSON `json:"points"`
	Total  metricsPointJSON   `json:"total"`
	// Error says why there are none (the gateway did not answer).
	Error string `json:"error,omitempty"`
}

// metricsPointJSON is the requests of one step: counts by status class,
// errors (5xx), latency percentiles (ms, bucket bounds) and requests by
// version.
type metricsPointJSON struct {
	Start     time.Time         `json:"start"`
	Requests  uint64            `json:"requests"`
	Status    [5]uint64         `json:"status"`
	Errors    uint64            `json:"errors"`
	P50       float64           `json:"p50"`
	P99       float64           `json:"p99"`
	ByVersion map[string]uint64 `json:"byVersion,omitempty"`
}

func toPoint(start time.Time, c metrics.Counts, byVersion map[string]uint64) metricsPointJSON {
	return metricsPointJSON{Start: start, Requests: c.Requests, Status: c.Status, Errors: c.Errors(),
		P50: c.Quantile(0.5), P99: c.Quantile(0.99), ByVersion: byVersion}
}

// chartWindow is a chart's span: "1h" by minute (the default), "24h" by
// hour; to is the end of the current step.
func (d *Dashboard) chartWindow(window string) (name string, step time.Duration, from, to time.Time) {
	step, span := time.Minute, time.Hour
	if window == "24h" {
		step, span = time.Hour, 24*time.Hour
	} else {
		window = "1h"
	}
	to = d.now().Truncate(step).Add(step)
	return window, step, to.Add(-span), to
}

// workerMetrics reads a script's requests for window ("1h": by minute,
// "24h": by hour); an empty account and script read every Worker's.
func (d *Dashboard) workerMetrics(ctx context.Context, accountID, script, window string) *workerMetricsJSON {
	if d.opts.Metrics == nil {
		return nil
	}
	window, step, from, to := d.chartWindow(window)
	out := &workerMetricsJSON{Window: window, Step: int64(step / time.Second), From: from, Points: []metricsPointJSON{}}
	pts, err := d.opts.Metrics(ctx, accountID, script, from, to)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	byStep := map[int64]*metrics.Point{}
	var total metrics.Counts
	for _, p := range pts {
		k := time.Unix(p.Start, 0).Truncate(step).Unix()
		agg := byStep[k]
		if agg == nil {
			agg = &metrics.Point{Start: k, ByVersion: map[string]metrics.Counts{}}
			byStep[k] = agg
		}
		agg.Add(p.Counts)
		for v, c := range p.ByVersion {
			vc := agg.ByVersion[v]
			vc.Add(c)
			agg.ByVersion[v] = vc
		}
		total.Add(p.Counts)
	}
	for t := from; t.Before(to); t = t.Add(step) {
		agg := byStep[t.Unix()]
		if agg == nil {
			out.Points = append(out.Points, metricsPointJSON{Start: t})
			continue
		}
		byVersion := map[string]uint64{}
		for v, c := range agg.ByVersion {
			byVersion[v] = c.Requests
		}
		out.Points = append(out.Points, toPoint(t, agg.Counts, byVersion))
	}
	out.Total = toPoint(from, total, nil)
	return out
}

// usageJSON is the CPU time and memory of the pods that run a Worker (on
// the overview: every Worker) over a window. workerd reports no CPU time
// per invocation, so this is the pods': the Workers of a bundle share it.
type usageJSON struct {
	Window string    `json:"window"`
	Step   int64     `json:"step"`
	From   time.Time `json:"from"`
	// Bundles are the bundles whose pods run the Worker, with how many
	// Workers each runs (they share its CPU and memory).
	Bundles    []usageBundleJSON `json:"bundles"`
	Points     []usagePointJSON  `json:"points"`
	CPUSeconds float64           `json:"cpuSeconds"`
	Error      string            `json:"error,omitempty"`
}

type usageBundleJSON struct {
	Name    string `json:"name"`
	Workers int    `json:"workers"`
}

// usagePointJSON is one step: the CPU seconds spent in it, the average
// cores that is, and the largest working set sampled.
type usagePointJSON struct {
	Start       time.Time `json:"start"`
	CPUSeconds  float64   `json:"cpuSeconds"`
	Cores       float64   `json:"cores"`
	MemoryBytes uint64    `json:"memoryBytes"`
}

// workerUsage reads the usage of the pods of bundles, or of every bundle
// summed when all is set, for window.
func (d *Dashboard) workerUsage(ctx context.Context, all bool, bundles []apiv1.WorkerBundle, window string) *usageJSON {
	if d.opts.Usage == nil {
		return nil
	}
	window, step, from, to := d.chartWindow(window)
	out := &usageJSON{Window: window, Step: int64(step / time.Second), From: from, Bundles: []usageBundleJSON{}, Points: []usagePointJSON{}}
	keys := [][2]string{{"", ""}}
	if !all {
		keys = keys[:0]
		for _, b := range bundles {
			keys = append(keys, [2]string{b.Spec.AccountID, apiv1.BundleLabelValue(b.Name)})
			out.Bundles = append(out.Bundles, usageBundleJSON{Name: b.Name, Workers: placedWorkers(b)})
		}
	}
	// The bundles' minutes summed, then the steps: CPU summed, memory the
	// largest minute's.
	byMinute := map[int64]*metrics.UsageMinute{}
	for _, k := range keys {
		ms, err := d.opts.Usage(ctx, k[0], k[1], from, to)
		if err != nil {
			out.Error = err.Error()
			return out
		}
		for _, m := range ms {
			sum := byMinute[m.Start]
			if sum == nil {
				sum = &metrics.UsageMinute{Start: m.Start}
				byMinute[m.Start] = sum
			}
			sum.CPUSeconds += m.CPUSeconds
			sum.MemoryBytes += m.MemoryBytes
		}
	}
	byStep := map[int64]*usagePointJSON{}
	for _, m := range byMinute {
		at := time.Unix(m.Start, 0).Truncate(step)
		p := byStep[at.Unix()]
		if p == nil {
			p = &usagePointJSON{Start: at}
			byStep[at.Unix()] = p
		}
		p.CPUSeconds += m.CPUSeconds
		p.MemoryBytes = max(p.MemoryBytes, m.MemoryBytes)
		out.CPUSeconds += m.CPUSeconds
	}
	for t := from; t.Before(to); t = t.Add(step) {
		p := usagePointJSON{Start: t}
		if got := byStep[t.Unix()]; got != nil {
			p = *got
			p.Cores = p.CPUSeconds / step.Seconds()
		}
		out.Points = append(out.Points, p)
	}
	return out
}

// placedWorkers counts the scripts a bundle runs for their own (not as a
// copy for another's service bindings).
func placedWorkers(b apiv1.WorkerBundle) int {
	scripts := map[string]bool{}
	for _, w := range b.Spec.Workers {
		if !w.Copy {
			scripts[w.ScriptName] = true
		}
	}
	return len(scripts)
}

// homeBundles are the bundles of an account that run script for its own.
func homeBundles(bundles []apiv1.WorkerBundle, accountID, script string) []apiv1.WorkerBundle {
	out := []apiv1.WorkerBundle{}
	for _, b := range bundles {
		if b.Spec.AccountID == accountID && slices.ContainsFunc(b.Spec.Workers, func(w apiv1.BundleWorker) bool {
			return w.ScriptName == script && !w.Copy
		}) {
			out = append(out, b)
		}
	}
	return out
}

// cronJSON is a worker's cron triggers and their latest runs, newest first.
type cronJSON struct {
	Schedules []scheduleJSON `json:"schedules"`
	Runs      []cronRunJSON  `json:"runs"`
}

type scheduleJSON struct {
	Cron      string    `json:"cron"`
	CreatedOn time.Time `json:"createdOn"`
}

type cronRunJSON struct {
	Cron          string    `json:"cron"`
	ScheduledTime time.Time `json:"scheduledTime"`
	VersionID     string    `json:"versionID,omitempty"`
	Outcome       string    `json:"outcome"`
	Message       string    `json:"message,omitempty"`
	DurationMs    int64     `json:"durationMs"`
}

func toCron(rel *apiv1.WorkerRelease) cronJSON {
	out := cronJSON{Schedules: []scheduleJSON{}, Runs: []cronRunJSON{}}
	for _, t := range rel.Spec.Schedules {
		out.Schedules = append(out.Schedules, scheduleJSON{Cron: t.Cron, CreatedOn: t.CreatedOn.Time})
	}
	if rel.Status.Cron != nil {
		for _, r := range rel.Status.Cron.Runs {
			out.Runs = append(out.Runs, cronRunJSON{Cron: r.Cron, ScheduledTime: r.ScheduledTime.Time, VersionID: r.VersionID,
				Outcome: r.Outcome, Message: r.Message, DurationMs: r.DurationMillis})
		}
	}
	return out
}

func bindingValue(b apiv1.WorkerBinding) string {
	switch {
	case b.Type == apiv1.BindingPlainText:
		return b.Text
	case b.Type == apiv1.BindingDurableObject:
		return b.ClassName // its namespace ID tells a user nothing
	case b.JSON != nil:
		return string(b.JSON.Raw)
	case b.NamespaceID != "":
		return b.NamespaceID
	case b.Service != "":
		if b.Entrypoint != "" {
			return b.Service + "#" + b.Entrypoint
		}
		return b.Service
	case b.Part != "":
		return b.Part
	case b.Extra != nil:
		return string(b.Extra.Raw)
	}
	return ""
}

func toBindings(bs []apiv1.WorkerBinding) []bindingJSON {
	out := []bindingJSON{}
	for _, b := range bs {
		if b.SecretRef != nil || b.Type == apiv1.BindingSecretText || b.Type == apiv1.BindingSecretKey {
			out = append(out, bindingJSON{Name: b.Name, Type: b.Type, Secret: true})
			continue
		}
		out = append(out, bindingJSON{Name: b.Name, Type: b.Type, Value: bindingValue(b)})
	}
	return out
}

// workerOf finds the account and the release a worker route names
// (:account, :script).
func (d *Dashboard) workerOf(c echo.Context) (account, *apiv1.WorkerRelease, error) {
	ctx := c.Request().Context()
	a, err := d.findAccount(ctx, c.Param("account"))
	if err != nil {
		return account{}, nil, err
	}
	rel, err := d.release(ctx, a, c.Param("script"))
	return a, rel, err
}

func (d *Dashboard) worker(c echo.Context) error {
	ctx := c.Request().Context()
	a, rel, err := d.workerOf(c)
	if err != nil {
		return err
	}
	script := rel.Spec.ScriptName
	byScript, err := d.versions(ctx, a, script)
	if err != nil {
		return err
	}
	vs := byScript[script]
	jbs, err := d.jobBuilders(ctx, a.Namespace)
	if err != nil {
		return err
	}
	bundles, err := d.bundles(ctx, a.Namespace)
	if err != nil {
		return err
	}
	out := workerPageJSON{Account: a, Worker: d.toWorker(a, rel, vs, jbs, bundles), Versions: []versionJSON{}, Deployments: []deploymentJSON{}, Cron: toCron(rel),
		Metrics: d.workerMetrics(ctx, a.ID, script, c.QueryParam("window")),
		Usage:   d.workerUsage(ctx, false, homeBundles(bundles, a.ID, script), c.QueryParam("window"))}
	share := map[string]int32{}
	if dep := rel.ActiveDeployment(); dep != nil {
		for _, v := range dep.Versions {
			share[v.VersionID] = v.Percentage
		}
	}
	for i := len(vs) - 1; i >= 0; i-- { // newest first
		v := vs[i]
		vj := versionJSON{
			ID: v.Spec.VersionID, Number: v.Spec.Number, CreatedAt: v.Spec.CreatedAt.Time,
			Message: v.Spec.Annotations[apiv1.AnnotationMessage], Tag: v.Spec.Annotations[apiv1.AnnotationTag],
			TriggeredBy: v.Spec.Annotations[apiv1.AnnotationTriggeredBy], Source: v.Spec.Source,
			Phase: string(v.Status.Phase), StatusMessage: v.Status.Message,
			CompatibilityDate: v.Spec.CompatibilityDate, CompatibilityFlags: append([]string{}, v.Spec.CompatibilityFlags...),
			StartupTimeMs: v.Spec.StartupTimeMs, Modules: []moduleJSON{}, Bindings: toBindings(v.Spec.Bindings),
			Percentage: share[v.Spec.VersionID],
		}
		if a := v.Spec.Assets; a != nil {
			vj.Assets = &assetsJSON{Files: a.Files, HTMLHandling: a.HTMLHandling, NotFoundHandling: a.NotFoundHandling,
				Binding: a.Binding, AssetsOnly: len(v.Spec.Modules) == 0}
		}
		for _, m := range v.Spec.Modules {
			vj.Modules = append(vj.Modules, moduleJSON{Name: m.Name, Type: string(m.Type), Size: m.Size})
		}
		out.Versions = append(out.Versions, vj)
	}
	nums := numbers(vs)
	for i, dep := range rel.Spec.Deployments {
		out.Deployments = append(out.Deployments, toDeployment(dep, nums, i == 0))
	}
	return c.JSON(http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Builds

type buildJSON struct {
	Name       string     `json:"name"`
	Namespace  string     `json:"namespace"`
	Account    string     `json:"account"`
	Bundle     string     `json:"bundle"`
	Phase      string     `json:"phase"`
	Digest     string     `json:"digest,omitempty"`
	Image      string     `json:"image,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// DurationMs is finishedAt - startedAt, or the time so far while it
	// runs; 0 before it starts.
	DurationMs int64        `json:"durationMs"`
	Message    string       `json:"message,omitempty"`
	Inputs     []inputJSON  `json:"inputs"`
	Failed     []failedJSON `json:"failed"`
	// Current is true for the latest build of its bundle.
	Current bool `json:"current"`
}

type inputJSON struct {
	Script    string `json:"script"`
	VersionID string `json:"versionID"`
}

type failedJSON struct {
	Script    string `json:"script"`
	VersionID string `json:"versionID"`
	Message   string `json:"message,omitempty"`
}

func (d *Dashboard) builds(c echo.Context) error {
	ctx := c.Request().Context()
	jbs, err := d.jobBuilders(ctx, "")
	if err != nil {
		return err
	}
	bundles, err := d.bundles(ctx, "")
	if err != nil {
		return err
	}
	current := map[string]bool{}
	for _, b := range bundles {
		if b.Status.JobBuilderName != "" {
			current[b.Namespace+"/"+b.Status.JobBuilderName] = true
		}
	}
	out := struct {
		Builds []buildJSON `json:"builds"`
	}{Builds: []buildJSON{}}
	for _, jb := range jbs {
		bj := buildJSON{
			Name: jb.Name, Namespace: jb.Namespace, Account: cmp.Or(jb.Spec.AccountID, jb.Labels[apiv1.LabelAccount]),
			Bundle: jb.Spec.BundleName, Phase: cmp.Or(string(jb.Status.Phase), string(apiv1.JobBuilderPending)),
			Digest: jb.Status.Digest, Image: jb.Status.Image, CreatedAt: jb.CreationTimestamp.Time, Message: jb.Status.Message,
			Inputs: []inputJSON{}, Failed: []failedJSON{}, Current: current[jb.Namespace+"/"+jb.Name],
		}
		if s := jb.Status.StartedAt; s != nil {
			t := s.Time
			bj.StartedAt = &t
			end := d.now()
			if f := jb.Status.FinishedAt; f != nil {
				ft := f.Time
				bj.FinishedAt, end = &ft, ft
			}
			bj.DurationMs = max(end.Sub(t).Milliseconds(), 0)
		}
		for _, in := range jb.Spec.Inputs {
			bj.Inputs = append(bj.Inputs, inputJSON{Script: in.ScriptName, VersionID: in.VersionID})
		}
		for _, b := range bundles {
			if b.Namespace == jb.Namespace && b.Status.JobBuilderName == jb.Name {
				for _, f := range b.Status.FailedWorkers {
					bj.Failed = append(bj.Failed, failedJSON{Script: f.ScriptName, VersionID: f.VersionID, Message: f.Message})
				}
			}
		}
		out.Builds = append(out.Builds, bj)
	}
	return c.JSON(http.StatusOK, out)
}

// ---------------------------------------------------------------------------
// Cluster

type conditionJSON struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

type bundleJSON struct {
	Name          string          `json:"name"`
	Namespace     string          `json:"namespace"`
	Account       string          `json:"account"`
	Workers       int             `json:"workers"`
	ReadyReplicas int32           `json:"readyReplicas"`
	Image         string          `json:"image,omitempty"`
	JobBuilder    string          `json:"jobBuilder,omitempty"`
	Conditions    []conditionJSON `json:"conditions"`
	Failed        []failedJSON    `json:"failed"`
}

type podJSON struct {
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Account   string     `json:"account,omitempty"`
	Bundle    string     `json:"bundle,omitempty"`
	Phase     string     `json:"phase"`
	Ready     string     `json:"ready"` // "1/1"
	Restarts  int32      `json:"restarts"`
	Reason    string     `json:"reason,omitempty"`
	IP        string     `json:"ip,omitempty"`
	Node      string     `json:"node,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	Deleting  bool       `json:"deleting,omitempty"`
	// MemoryBytes is the pod's working set, MemoryLimitBytes the sum of its
	// containers' limits; 0 when unknown.
	MemoryBytes      uint64 `json:"memoryBytes,omitempty"`
	MemoryLimitBytes int64  `json:"memoryLimitBytes,omitempty"`
}

type eventJSON struct {
	Namespace string    `json:"namespace"`
	Object    string    `json:"object"` // Kind/name
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Count     int32     `json:"count"`
	LastSeen  time.Time `json:"lastSeen"`
}

// maxEvents is how many recent events the cluster view shows.
const maxEvents = 40

func (d *Dashboard) cluster(c echo.Context) error {
	ctx := c.Request().Context()
	bundles, err := d.bundles(ctx, "")
	if err != nil {
		return err
	}
	out := struct {
		Bundles []bundleJSON `json:"bundles"`
		Pods    []podJSON    `json:"pods"`
		Events  []eventJSON  `json:"events"`
	}{Bundles: []bundleJSON{}, Pods: []podJSON{}, Events: []eventJSON{}}
	namespaces := map[string]bool{}
	for _, b := range bundles {
		namespaces[b.Namespace] = true
		bj := bundleJSON{
			Name: b.Name, Namespace: b.Namespace, Account: b.Spec.AccountID, Workers: len(b.Spec.Workers),
			ReadyReplicas: b.Status.ReadyReplicas, Image: b.Status.Image, JobBuilder: b.Status.JobBuilderName,
			Conditions: []conditionJSON{}, Failed: []failedJSON{},
		}
		for _, c := range b.Status.Conditions {
			bj.Conditions = append(bj.Conditions, conditionJSON{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message})
		}
		for _, f := range b.Status.FailedWorkers {
			bj.Failed = append(bj.Failed, failedJSON{Script: f.ScriptName, VersionID: f.VersionID, Message: f.Message})
		}
		out.Bundles = append(out.Bundles, bj)
	}
	var pods corev1.PodList
	if err := d.opts.Reader.List(ctx, &pods, client.HasLabels{apiv1.LabelBundle}); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var memory map[string]uint64
	if d.opts.PodMemory != nil {
		if memory, err = d.opts.PodMemory(ctx); err != nil {
			d.log.Warn("pod memory", "err", err) // the rest of the view still helps
		}
	}
	podNames := map[string]bool{}
	for _, p := range pods.Items {
		namespaces[p.Namespace] = true
		podNames[p.Namespace+"/"+p.Name] = true
		pj := toPod(&p)
		pj.MemoryBytes = memory[p.Namespace+"/"+p.Name]
		out.Pods = append(out.Pods, pj)
	}
	slices.SortFunc(out.Pods, func(a, b podJSON) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	accts, err := d.accounts(ctx)
	if err != nil {
		return err
	}
	for _, a := range accts {
		namespaces[a.Namespace] = true
	}
	for ns := range namespaces {
		var evs corev1.EventList
		if err := d.opts.Reader.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		for _, ev := range evs.Items {
			o := ev.InvolvedObject
			if !relevantKind(o.Kind) || (o.Kind == "Pod" && !podNames[ev.Namespace+"/"+o.Name]) {
				continue
			}
			out.Events = append(out.Events, eventJSON{
				Namespace: ev.Namespace, Object: o.Kind + "/" + o.Name, Type: ev.Type, Reason: ev.Reason,
				Message: ev.Message, Count: max(ev.Count, 1), LastSeen: lastSeen(&ev),
			})
		}
	}
	slices.SortFunc(out.Events, func(a, b eventJSON) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.Object, b.Object))
	})
	if len(out.Events) > maxEvents {
		out.Events = out.Events[:maxEvents]
	}
	return c.JSON(http.StatusOK, out)
}

// relevantKind: the events of octo's objects and of the bundles' workloads.
func relevantKind(kind string) bool {
	switch kind {
	case "Pod", "Deployment", "ReplicaSet", "Service", "WorkerAccount", "WorkerBundle", "JobBuilder", "WorkerRelease", "WorkerVersion":
		return true
	}
	return false
}

func lastSeen(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	case !ev.FirstTimestamp.IsZero():
		return ev.FirstTimestamp.Time
	}
	return ev.CreationTimestamp.Time
}

func toPod(p *corev1.Pod) podJSON {
	out := podJSON{
		Name: p.Name, Namespace: p.Namespace, Account: p.Labels[apiv1.LabelAccount], Bundle: p.Labels[apiv1.LabelBundle],
		Phase: string(p.Status.Phase), IP: p.Status.PodIP, Node: p.Spec.NodeName, Reason: p.Status.Reason,
		Deleting: p.DeletionTimestamp != nil,
	}
	if p.Status.StartTime != nil {
		t := p.Status.StartTime.Time
		out.StartedAt = &t
	}
	ready := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		out.Restarts += cs.RestartCount
		if out.Reason == "" {
			switch {
			case cs.State.Waiting != nil:
				out.Reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil:
				out.Reason = cs.State.Terminated.Reason
			}
		}
	}
	for _, c := range p.Spec.Containers {
		if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			out.MemoryLimitBytes += l.Value()
		}
	}
	total := max(len(p.Spec.Containers), len(p.Status.ContainerStatuses))
	out.Ready = fmt.Sprintf("%d/%d", ready, total)
	return out
}

// ---------------------------------------------------------------------------
// Workers Logs

// logsJSON answers a search of a worker's kept logs.
type logsJSON struct {
	// Enabled says whether the worker keeps its logs now
	// (observability.enabled); SamplingRate is the share of invocations kept.
	Enabled      bool    `json:"enabled"`
	SamplingRate float64 `json:"samplingRate"`
	// Available is false when this dashboard has no log store.
	Available bool              `json:"available"`
	Entries   []logEntryJSON    `json:"entries"`
	Query     map[string]string `json:"query"`
}

// logEntryJSON is one invocation: when, how it ended, what it printed.
type logEntryJSON struct {
	Time       time.Time `json:"time"`
	Level      string    `json:"level"`
	Version    string    `json:"version,omitempty"`
	Outcome    string    `json:"outcome"`
	Trigger    string    `json:"trigger"`
	Logs       []string  `json:"logs"`
	Exceptions []string  `json:"exceptions"`
}

// logWindows are the time windows a log search may cover.
var logWindows = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "3d": 72 * time.Hour}

func (d *Dashboard) workerLogs(c echo.Context) error {
	ctx := c.Request().Context()
	a, rel, err := d.workerOf(c)
	if err != nil {
		return err
	}
	script := rel.Spec.ScriptName
	window := c.QueryParam("window")
	span, ok := logWindows[window]
	if !ok {
		window, span = "24h", logWindows["24h"]
	}
	q := workerlogs.Query{Since: d.now().Add(-span), Until: d.now(), Level: c.QueryParam("level"),
		Version: c.QueryParam("version"), Text: c.QueryParam("q"), Limit: 200}
	out := logsJSON{Enabled: rel.Spec.Observability.SamplingRate() > 0, SamplingRate: rel.Spec.Observability.SamplingRate(),
		Available: d.opts.Logs != nil, Entries: []logEntryJSON{},
		Query: map[string]string{"window": window, "level": q.Level, "version": q.Version, "q": q.Text}}
	if d.opts.Logs == nil {
		return c.JSON(http.StatusOK, out)
	}
	entries, err := d.opts.Logs(ctx, a.ID, script, q)
	if err != nil {
		return err
	}
	for _, e := range entries {
		je := logEntryJSON{Time: e.Time, Level: e.Level, Version: e.Version, Outcome: e.Outcome,
			Trigger: trigger(e.Event.Event), Logs: []string{}, Exceptions: []string{}}
		for _, l := range e.Event.Logs {
			parts := make([]string, 0, len(l.Message))
			for _, m := range l.Message {
				var s string
				if json.Unmarshal(m, &s) != nil {
					s = string(m)
				}
				parts = append(parts, s)
			}
			je.Logs = append(je.Logs, l.Level+": "+strings.Join(parts, " "))
		}
		for _, x := range e.Event.Exceptions {
			je.Exceptions = append(je.Exceptions, x.Name+": "+x.Message)
		}
		out.Entries = append(out.Entries, je)
	}
	return c.JSON(http.StatusOK, out)
}

// trigger describes what started an invocation: "GET https://…/path" for a
// request, "cron */5 * * * *" for a scheduled run.
func trigger(event json.RawMessage) string {
	var e struct {
		Request *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
		Response *struct {
			Status int `json:"status"`
		} `json:"response"`
		Cron string `json:"cron"`
	}
	if json.Unmarshal(event, &e) != nil {
		return ""
	}
	switch {
	case e.Request != nil:
		s := e.Request.Method + " " + e.Request.URL
		if e.Response != nil && e.Response.Status != 0 {
			s += " → " + strconv.Itoa(e.Response.Status)
		}
		return s
	case e.Cron != "":
		return "cron " + e.Cron
	}
	return ""
}
