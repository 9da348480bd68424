package cfapi

import (
	"net/http"
	"testing"

	"github.com/octohq/octo/internal/store"
)

type schedulesReply struct {
	Schedules []struct {
		Cron       string `json:"cron"`
		CreatedOn  string `json:"created_on"`
		ModifiedOn string `json:"modified_on"`
	} `json:"schedules"`
}

func (env *scEnv) schedules(script string) []string {
	env.t.Helper()
	var got schedulesReply
	env.must(env.call(http.MethodGet, "/scripts/"+script+"/schedules", nil)).into(env.t, &got)
	var out []string
	for _, s := range got.Schedules {
		if s.CreatedOn == "" || s.ModifiedOn == "" {
			env.t.Errorf("schedule %q has no created_on/modified_on", s.Cron)
		}
		out = append(out, s.Cron)
	}
	return out
}

// TestSchedules is `wrangler deploy` with triggers.crons and `wrangler
// triggers deploy`: PUT replaces the list, GET lists it, a bad expression
// changes nothing, an unknown script is 10007.
func TestSchedules(t *testing.T) {
	t.Parallel()
	env := newScriptsEnv(t)
	const script = "cron-app"
	env.deployHello(script)
	if got := env.schedules(script); len(got) != 0 {
		t.Fatalf("a new script has schedules %v", got)
	}
	var put schedulesReply
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/schedules", `[{"cron":"*/5 * * * *"},{"cron":"0 12 * * MON-FRI"},{"cron":"*/5 * * * *"}]`)).into(t, &put)
	if len(put.Schedules) != 2 || put.Schedules[0].Cron != "*/5 * * * *" || put.Schedules[1].Cron != "0 12 * * MON-FRI" {
		t.Errorf("PUT answered %+v, want the two distinct crons in order", put.Schedules)
	}
	if got := env.schedules(script); len(got) != 2 {
		t.Errorf("GET = %v, want 2 schedules", got)
	}
	rel := env.release(script)
	created := rel.Spec.Schedules[0].CreatedOn

	for _, tc := range []struct{ body, msg string }{
		{`[{"cron":"61 * * * *"}]`, "invalid cron expression"},
		{`[{"cron":"* * *"}]`, "invalid cron expression"},
		{`[{"cron":"0 0 L * *"}]`, "L, W and # day extensions"},
		{`[{"cron":"0 0 * * 5#2"}]`, "L, W and # day extensions"},
		{`[{"cron":"@every 1m"}]`, "no @every"},
		{`[{"cron":"CRON_TZ=Europe/Paris 0 0 * * *"}]`, "UTC"},
		{`[{"cron":"*/5 * * * *"},{"cron":"nope"}]`, "invalid cron expression"},
		{`[{"cron":"1 * * * *"},{"cron":"2 * * * *"},{"cron":"3 * * * *"},{"cron":"4 * * * *"},{"cron":"5 * * * *"},{"cron":"6 * * * *"},{"cron":"7 * * * *"},{"cron":"8 * * * *"},{"cron":"9 * * * *"},{"cron":"10 * * * *"},{"cron":"11 * * * *"}]`, "at most 10"},
	} {
		env.fails(env.call(http.MethodPut, "/scripts/"+script+"/schedules", tc.body), http.StatusBadRequest, store.CodeBadCron, tc.msg)
	}
	env.fails(env.call(http.MethodPut, "/scripts/"+script+"/schedules", `{"cron":"* * * * *"}`), http.StatusBadRequest, store.CodeBadRequest, "JSON array")
	env.fails(env.call(http.MethodPut, "/scripts/"+script+"/schedules", `[{}]`), http.StatusBadRequest, store.CodeBadRequest, "cron")
	if got := env.schedules(script); len(got) != 2 {
		t.Errorf("after refused PUTs GET = %v, want the 2 schedules unchanged", got)
	}

	// A trigger that stays keeps its creation time (it must not fire again
	// for times it already covered); a new one gets the time of the PUT.
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/schedules", `[{"cron":"@hourly"},{"cron":"*/5 * * * *"}]`))
	rel = env.release(script)
	if len(rel.Spec.Schedules) != 2 || rel.Spec.Schedules[1].Cron != "*/5 * * * *" || !rel.Spec.Schedules[1].CreatedOn.Equal(&created) {
		t.Errorf("schedules = %+v, want */5 kept with its creation time %v", rel.Spec.Schedules, created)
	}
	env.must(env.call(http.MethodPut, "/scripts/"+script+"/schedules", `[]`))
	if got := env.schedules(script); len(got) != 0 {
		t.Errorf("after PUT [] GET = %v, want none", got)
	}
	env.fails(env.call(http.MethodPut, "/scripts/no-such-script/schedules", `[{"cron":"* * * * *"}]`), http.StatusNotFound, store.CodeNotFound, "")
	env.fails(env.call(http.MethodGet, "/scripts/no-such-script/schedules", nil), http.StatusNotFound, store.CodeNotFound, "")
}
