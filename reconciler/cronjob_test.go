package reconciler

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestCronSchedule_next pins the times a schedule runs at, around daylight
// saving changes in particular (see cronSchedule).
func TestCronSchedule_next(t *testing.T) {
	berlin, ny := mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York")
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		x, err := time.ParseInLocation("2006-01-02 15:04 MST", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, tc := range []struct {
		name, schedule, tz string
		from               time.Time
		want               []string // in the time zone, "2006-01-02 15:04 MST"
	}{
		{"UTC when no time zone", "0 9 * * 1", "", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			[]string{"2025-01-06 09:00 UTC", "2025-01-13 09:00 UTC"}},
		{"spring forward: a daily 02:30 runs at 03:30 CEST", "30 2 * * *", "Europe/Berlin", at(berlin, "2025-03-29 12:00 CET"),
			[]string{"2025-03-30 03:30 CEST", "2025-03-31 02:30 CEST"}},
		{"spring forward: a daily 02:00 runs at 03:00 CEST", "0 2 * * *", "Europe/Berlin", at(berlin, "2025-03-29 12:00 CET"),
			[]string{"2025-03-30 03:00 CEST", "2025-03-31 02:00 CEST"}},
		{"spring forward: 03:30 is not doubled", "30 3 * * *", "Europe/Berlin", at(berlin, "2025-03-29 12:00 CET"),
			[]string{"2025-03-30 03:30 CEST", "2025-03-31 03:30 CEST"}},
		{"fall back: a daily 02:30 runs once", "30 2 * * *", "Europe/Berlin", at(berlin, "2025-10-25 12:00 CEST"),
			[]string{"2025-10-26 02:30 CEST", "2025-10-27 02:30 CET"}},
		{"fall back: every minute of 2 am runs through the first 2 am only", "*/20 2 * * *", "Europe/Berlin", at(berlin, "2025-10-26 01:59 CEST"),
			[]string{"2025-10-26 02:00 CEST", "2025-10-26 02:20 CEST", "2025-10-26 02:40 CEST", "2025-10-27 02:00 CET"}},
		{"fall back: planning inside the second 2 am does not rerun the first", "30 2 * * *", "Europe/Berlin", at(berlin, "2025-10-26 02:10 CET"),
			[]string{"2025-10-27 02:30 CET"}},
		{"fall back: an hourly schedule runs in both 02:30s", "30 * * * *", "Europe/Berlin", at(berlin, "2025-10-26 01:45 CEST"),
			[]string{"2025-10-26 02:30 CEST", "2025-10-26 02:30 CET", "2025-10-26 03:30 CET"}},
		{"spring forward: an hourly schedule has no 02:30", "30 * * * *", "Europe/Berlin", at(berlin, "2025-03-30 01:45 CET"),
			[]string{"2025-03-30 03:30 CEST", "2025-03-30 04:30 CEST"}},
		{"New York spring forward", "30 2 * * *", "America/New_York", at(ny, "2025-03-08 12:00 EST"),
			[]string{"2025-03-09 03:30 EDT", "2025-03-10 02:30 EDT"}},
		{"New York fall back repeats 01:30", "30 1 * * *", "America/New_York", at(ny, "2025-11-01 12:00 EDT"),
			[]string{"2025-11-02 01:30 EDT", "2025-11-03 01:30 EST"}},
		{"@daily names its hour", "@daily", "Europe/Berlin", at(berlin, "2025-03-29 12:00 CET"),
			[]string{"2025-03-30 00:00 CET", "2025-03-31 00:00 CEST"}},
		{"@hourly follows real time", "@hourly", "Europe/Berlin", at(berlin, "2025-10-26 01:30 CEST"),
			[]string{"2025-10-26 02:00 CEST", "2025-10-26 02:00 CET", "2025-10-26 03:00 CET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tz *string
			loc := time.UTC
			if tc.tz != "" {
				tz, loc = &tc.tz, mustLoad(t, tc.tz)
			}
			s, err := parseSchedule(tc.schedule, tz)
			if err != nil {
				t.Fatal(err)
			}
			x := tc.from
			for _, w := range tc.want {
				x = s.next(x)
				if got := x.In(loc).Format("2006-01-02 15:04 MST"); got != w {
					t.Fatalf("next: %s, want %s", got, w)
				}
			}
		})
	}
}

func TestCronSchedule_due(t *testing.T) {
	minutely, _ := parseSchedule("* * * * *", nil)
	monthlyFirst, _ := parseSchedule("* * 1 * *", nil) // every minute of the 1st
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		s          cronSchedule
		after, now time.Time
		due        time.Time
		missed     int
	}{
		{"nothing due", minutely, base, base.Add(50 * time.Second), time.Time{}, 0},
		{"one due", minutely, base, base.Add(55 * time.Second), base.Add(55 * time.Second), 0},
		{"the latest of three", minutely, base, base.Add(3 * time.Minute), time.Date(2025, 1, 2, 3, 7, 0, 0, time.UTC), 2},
		{"a year of minutes: the latest, counted up to the cap", minutely, base, base.AddDate(1, 0, 0),
			time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), maxScheduleSteps},
		{"sparse after a long gap", monthlyFirst, base, time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC),
			time.Date(2025, 6, 1, 23, 59, 0, 0, time.UTC), maxScheduleSteps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, missed := tc.s.due(tc.after, tc.now)
			if !due.Equal(tc.due) || missed != tc.missed {
				t.Errorf("due %v missed %d, want %v and %d", due, missed, tc.due, tc.missed)
			}
		})
	}
}

func BenchmarkCronDue_yearOfMissedMinutes(b *testing.B) {
	s, _ := parseSchedule("* * * * *", nil)
	after := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for b.Loop() {
		s.due(after, after.AddDate(1, 0, 0))
	}
}
