package store

import (
	"testing"
	"time"
)

// TestParseCronWeekdays: Cloudflare numbers weekdays 1-7 from Sunday
// (its docs: "0 17 * * 1" is 17:00 on Sundays, "10 7 * * 2-6" weekdays).
func TestParseCronWeekdays(t *testing.T) {
	sat := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) // a Saturday
	for expr, want := range map[string]time.Time{
		"0 17 * * 1":    time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC), // Sunday
		"0 17 * * SUN":  time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC), // Sunday
		"10 7 * * 2-6":  time.Date(2026, 12, 7, 7, 10, 0, 0, time.UTC), // Monday
		"0 0 * * 7":     time.Date(2026, 12, 12, 0, 0, 0, 0, time.UTC), // next Saturday: today's midnight passed
		"0 13 * * 1,7":  time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC), // today, Saturday
		"0 9 * * 2-7/2": time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),  // Monday, Wednesday or Friday
		"*/30 * * * *":  time.Date(2026, 12, 5, 12, 30, 0, 0, time.UTC),
	} {
		s, err := ParseCron(expr)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if got := s.Next(sat); !got.Equal(want) {
			t.Errorf("%q: next after %s = %s (%s), want %s (%s)", expr, sat, got, got.Weekday(), want, want.Weekday())
		}
	}
	for _, bad := range []string{"0 0 * * 0", "0 0 * * 8", "0 0 * * 1-9"} {
		if _, err := ParseCron(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	if _, err := ParseCron("* * * *\n*"); err == nil {
		t.Error("an expression with a newline was accepted")
	}
}
