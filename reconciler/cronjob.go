package reconciler

import (
	"fmt"
	"strings"
	"time"
	// CronJobs' time zones must not depend on the host's zoneinfo: every
	// replica (and `bosun validate`) reads them from the same database, as
	// kube-controller-manager does.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"

	"bosun/manifest"
)

// Annotations the planner keeps on the CronJobs it writes, beside their
// status.
const (
	// AnnotationScheduledUntil is the latest scheduled time that was
	// decided without a run (skipped: missed its starting deadline, or
	// forbidden by a running Job). Runs are due after the latest of it,
	// status.lastScheduleTime and the CronJob's creation.
	AnnotationScheduledUntil = "bosun.dev/scheduled-until"
	// AnnotationLastSkip says why the latest skipped run was skipped.
	AnnotationLastSkip = "bosun.dev/last-skip"
)

// Reasons of CronJob events, as Kubernetes' cronjob controller names them
// where it has a name.
const (
	ReasonJobCreated       = "SuccessfulCreate"
	ReasonMissedDeadline   = "MissSchedule"
	ReasonMissedRuns       = "MissedRuns"
	ReasonJobAlreadyActive = "JobAlreadyActive"
	ReasonJobReplaced      = "SuccessfulDelete"
)

// cronSchedule is a CronJob's schedule in its time zone (UTC when it names
// none: every replica decides alike, whatever its local time zone).
//
// Daylight saving time: a schedule that names its hours (0 2 * * *,
// @daily) follows the wall clock. A run whose time does not exist on the
// night clocks spring forward runs when that wall-clock time would have
// been without the change (02:30 in Europe/Berlin runs at 03:30 CEST,
// exactly a day after the previous 02:30 CET); a time that occurs twice on
// the night clocks fall back runs once, at its first occurrence. A
// schedule with * in its hour field (*/5 * * * *, @hourly) and @every
// follow real time, so they run in every hour that really passes: twice
// through a repeated hour, not in a skipped one. (Kubernetes follows
// robfig/cron alone: it skips the spring-forward run of a daily 02:30 and
// runs it twice in the fall.)
type cronSchedule struct {
	sched cron.Schedule
	loc   *time.Location
	// wall is set when sched is evaluated on the wall clock: in UTC, over
	// wall-clock times of loc.
	wall bool
}

// parseSchedule reads a CronJob's schedule and time zone, as validated by
// manifest.
func parseSchedule(schedule string, timeZone *string) (cronSchedule, error) {
	schedule = strings.TrimSpace(schedule)
	s, err := manifest.CronParser.Parse(schedule)
	if err != nil {
		return cronSchedule{}, fmt.Errorf("schedule %q: %w", schedule, err)
	}
	loc := time.UTC
	if timeZone != nil {
		if loc, err = time.LoadLocation(*timeZone); err != nil {
			return cronSchedule{}, fmt.Errorf("timeZone %q: %w", *timeZone, err)
		}
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok { // @every: a constant delay, in real time
		return cronSchedule{sched: s, loc: loc}, nil
	}
	c := *spec
	wall := namesHours(schedule)
	if wall {
		c.Location = time.UTC
	} else {
		c.Location = loc
	}
	return cronSchedule{sched: &c, loc: loc, wall: wall}, nil
}

// namesHours reports whether a schedule runs at named hours, rather than
// every hour (a * hour field, @hourly).
func namesHours(schedule string) bool {
	if strings.HasPrefix(schedule, "@") {
		return schedule != "@hourly"
	}
	f := strings.Fields(schedule)
	return len(f) == 5 && f[1] != "*" && f[1] != "?"
}

// next is the first scheduled time after t; zero if there is none.
func (c cronSchedule) next(t time.Time) time.Time {
	if !c.wall {
		return c.sched.Next(t)
	}
	w := wallClock(t, c.loc)
	// Each step moves the wall clock forward; a wall-clock time whose
	// instant is not after t (in a repeated hour, its first occurrence
	// passed) is skipped. A few steps suffice but for every-minute
	// schedules within a repeated hour.
	for range 10000 {
		w = c.sched.Next(w)
		if w.IsZero() {
			return w
		}
		if x := instant(w, c.loc); x.After(t) {
			return x
		}
	}
	return time.Time{}
}

// wallClock is t's wall-clock time in loc, written in UTC.
func wallClock(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// instant is the first instant whose wall clock in loc reads w (a
// wall-clock time written in UTC); for a time the clocks skip, the instant
// it would have been with the offset in effect before the change.
func instant(w time.Time, loc *time.Location) time.Time {
	guess := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
	_, before := guess.Add(-24 * time.Hour).Zone()
	var best time.Time
	for _, probe := range []time.Time{guess.Add(-24 * time.Hour), guess, guess.Add(24 * time.Hour)} {
		_, off := probe.Zone()
		x := w.Add(-time.Duration(off) * time.Second)
		if wallClock(x, loc).Equal(w) && (best.IsZero() || x.Before(best)) {
			best = x
		}
	}
	if best.IsZero() {
		best = w.Add(-time.Duration(before) * time.Second)
	}
	return best
}

// maxScheduleSteps bounds the walk over missed runs; past it, the latest
// run is found by looking back from now.
const maxScheduleSteps = 1000

// due returns the latest scheduled time in (after, now], and how many
// earlier scheduled times in that interval it supersedes (capped: more
// than maxScheduleSteps reads as maxScheduleSteps).
func (c cronSchedule) due(after, now time.Time) (due time.Time, missed int) {
	t := after
	for i := 0; ; i++ {
		n := c.next(t)
		if n.IsZero() || n.After(now) {
			return due, max(i-1, 0)
		}
		if i == maxScheduleSteps {
			return c.latest(n, now), maxScheduleSteps
		}
		due, t = n, n
	}
}

// latest finds the latest scheduled time in [from, now], knowing from is
// one, by looking back from now over growing windows.
func (c cronSchedule) latest(from, now time.Time) time.Time {
	for w := time.Hour; ; w *= 2 {
		start := now.Add(-w)
		if !start.After(from) {
			start = from.Add(-time.Nanosecond)
		}
		if n := c.next(start); !n.After(now) {
			for {
				m := c.next(n)
				if m.IsZero() || m.After(now) {
					return n
				}
				n = m
			}
		}
	}
}

// cronJobName names a CronJob's run as Kubernetes does: the CronJob's name
// and the scheduled time in minutes since the epoch.
func cronJobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}
