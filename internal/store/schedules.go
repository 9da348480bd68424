package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	apiv1 "github.com/octohq/octo/api/v1"
)

// MaxSchedules is how many cron triggers one script may have (the CRD's
// limit on WorkerRelease spec.schedules).
const MaxSchedules = 10

// CodeBadCron is Cloudflare's code for an invalid cron expression.
const CodeBadCron = 10100

// cronParser reads the five-field expressions Cloudflare accepts, with
// month and weekday names and descriptors such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron trigger's expression as Cloudflare reads it:
// weekdays are 1-7 with 1 = Sunday (or SUN-SAT). Times are UTC. Cloudflare's
// L, W and # day extensions are refused with a clear error: the parser octo
// uses does not have them.
func ParseCron(expr string) (cron.Schedule, error) {
	if strings.TrimSpace(expr) != expr || expr == "" || len(expr) > 100 {
		return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %.100q: use five fields (minute hour day-of-month month day-of-week), e.g. \"*/5 * * * *\"", expr)
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "@every") {
		return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %q: cron triggers run in UTC, on whole minutes (no time zones, no @every)", expr)
	}
	for _, r := range expr {
		if r < 0x20 || r == 0x7f {
			return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %q: control characters are not allowed", expr)
		}
	}
	std, err := standardWeekdays(expr)
	if err != nil {
		return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %q: %v", expr, err)
	}
	s, err := cronParser.Parse(std)
	if err != nil {
		if dayExtension(expr) {
			return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %q: octo does not support the L, W and # day extensions yet", expr)
		}
		return nil, Errorf(Invalid, CodeBadCron, "invalid cron expression %q: %v", expr, err)
	}
	return s, nil
}

// Schedules returns the script's cron triggers; a script without any has
// none (not an error), an unknown script is NotFound.
func (s *Store) Schedules(ctx context.Context, a Account, script string) ([]apiv1.CronTrigger, error) {
	rel, err := s.Release(ctx, a, script)
	if err != nil {
		return nil, err
	}
	return rel.Spec.Schedules, nil
}

// PutSchedules replaces the script's cron triggers by crons, as the
// schedules endpoint does: each expression is checked first, so a bad one
// changes nothing. A trigger that stays keeps its creation time; an empty
// list removes them all.
func (s *Store) PutSchedules(ctx context.Context, a Account, script string, crons []string) ([]apiv1.CronTrigger, error) {
	if err := ValidScriptName(script); err != nil {
		return nil, err
	}
	if len(crons) > MaxSchedules {
		return nil, Errorf(Invalid, CodeBadCron, "a Worker may have at most %d cron triggers, not %d", MaxSchedules, len(crons))
	}
	seen := map[string]bool{}
	var want []string
	for _, c := range crons {
		if _, err := ParseCron(c); err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			want = append(want, c)
		}
	}
	unlock := s.locks.lock(a, script)
	defer unlock()
	var out []apiv1.CronTrigger
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rel, err := s.Release(ctx, a, script)
		if err != nil {
			return err
		}
		created := map[string]metav1.Time{}
		for _, t := range rel.Spec.Schedules {
			created[t.Cron] = t.CreatedOn
		}
		now := metav1.NewTime(s.now().UTC().Truncate(time.Second))
		out = nil
		for _, c := range want {
			t := apiv1.CronTrigger{Cron: c, CreatedOn: now}
			if at, ok := created[c]; ok {
				t.CreatedOn = at
			}
			out = append(out, t)
		}
		rel.Spec.Schedules = out
		return s.k8s.Update(ctx, rel)
	})
	if err != nil {
		if AsError(err) != nil {
			return nil, err
		}
		return nil, fmt.Errorf("record schedules: %w", err)
	}
	return out, nil
}

// dayExtension reports whether a day field of expr uses L ("last"), W
// ("weekday nearest") or # ("nth weekday"), e.g. "0 0 L * *" or "0 0 * * 5#2".
func dayExtension(expr string) bool {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return false
	}
	for _, d := range []string{f[2], f[4]} {
		if strings.Contains(d, "#") || strings.HasSuffix(d, "L") || (strings.HasSuffix(d, "W") && d[0] >= '0' && d[0] <= '9') {
			return true
		}
	}
	return false
}

// standardWeekdays rewrites Cloudflare's numeric weekdays (1-7, 1 = Sunday)
// in the fifth field to the parser's (0-6, 0 = Sunday); names, '*' and
// steps stay as they are.
func standardWeekdays(expr string) (string, error) {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return expr, nil // a descriptor, or the parser's own error
	}
	items := strings.Split(f[4], ",")
	for i, item := range items {
		base, step, hasStep := strings.Cut(item, "/")
		parts := strings.Split(base, "-")
		for j, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				continue // '*', a name, or the parser's own error
			}
			if n < 1 || n > 7 {
				return "", fmt.Errorf("weekday %d is out of range: use 1-7 (1 = Sunday) or SUN-SAT", n)
			}
			parts[j] = strconv.Itoa(n - 1)
		}
		items[i] = strings.Join(parts, "-")
		if hasStep {
			items[i] += "/" + step
		}
	}
	f[4] = strings.Join(items, ",")
	return strings.Join(f, " "), nil
}
