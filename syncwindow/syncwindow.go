package syncwindow

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	yamlv3 "go.yaml.in/yaml/v3"

	"bosun/manifest"

	// Zones come with the binary, so that the leader and `bosun validate`
	// agree on them whatever the host's zoneinfo holds.
	_ "time/tzdata"
)

// File is where a repository keeps its windows, relative to its root (not
// to the server's --path: the windows govern the whole tracked branch).
const File = ".bosun/windows.yaml"

// Kinds of windows.
const (
	KindDeny  = "deny"
	KindAllow = "allow"
)

// Window is one sync window of File.
type Window struct {
	Kind       string        // KindDeny or KindAllow
	Schedule   string        // 5-field cron: when the window opens
	Duration   time.Duration // how long it stays open, > 0
	TimeZone   string        // IANA name of Schedule's zone, "UTC" by default
	ManualSync bool          // a manual sync may apply a held revision while it blocks
	Line       int           // where the window is written in File

	sched cron.Schedule
	loc   *time.Location
}

// String names the window in reasons: `deny window .bosun/windows.yaml:3
// ("0 17 * * 5" for 64h0m0s, Europe/Berlin)`.
func (w Window) String() string {
	return fmt.Sprintf("%s window %s:%d (%q for %s, %s)", w.Kind, File, w.Line, w.Schedule, w.Duration, w.TimeZone)
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// maxWindows bounds the file: each window costs every decision a search.
const maxWindows = 100

// Parse decodes File's contents. Every problem is listed, as
// manifest.Errors naming File, the line and the field; a file without
// windows (empty, or `windows: []`) is valid and restricts nothing.
func Parse(data []byte) ([]Window, error) {
	var errs manifest.Errors
	add := func(line int, field, format string, args ...any) {
		errs = append(errs, manifest.Error{File: File, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		add(0, "", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, errs
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	top := doc.Content[0]
	if top.Kind != yamlv3.MappingNode {
		add(top.Line, "", "must be a mapping with the key \"windows\"")
		return nil, errs
	}
	var list *yamlv3.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "windows":
			list = v
		default:
			add(k.Line, k.Value, "unknown field (known: windows)")
		}
	}
	var out []Window
	if list != nil && list.Tag != "!!null" {
		if list.Kind != yamlv3.SequenceNode {
			add(list.Line, "windows", "must be a list of windows")
		} else {
			if len(list.Content) > maxWindows {
				add(list.Line, "windows", "has %d windows, more than %d", len(list.Content), maxWindows)
			}
			for i, n := range list.Content {
				if w, ok := parseWindow(n, fmt.Sprintf("windows[%d]", i), add); ok {
					out = append(out, w)
				}
			}
		}
	}
	if len(errs) > 0 {
		manifest.SortErrors(errs)
		return nil, errs
	}
	return out, nil
}

func parseWindow(n *yamlv3.Node, path string, add func(int, string, string, ...any)) (Window, bool) {
	w := Window{Line: n.Line, TimeZone: "UTC"}
	if n.Kind != yamlv3.MappingNode {
		add(n.Line, path, "must be a mapping (kind, schedule, duration, timeZone, manualSync)")
		return w, false
	}
	ok := true
	bad := func(line int, field, format string, args ...any) {
		add(line, path+"."+field, format, args...)
		ok = false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			bad(k.Line, k.Value, "given twice")
			continue
		}
		seen[k.Value] = true
		if v.Kind != yamlv3.ScalarNode {
			bad(v.Line, k.Value, "must be a single value")
			continue
		}
		switch k.Value {
		case "kind":
			w.Kind = v.Value
			if w.Kind != KindDeny && w.Kind != KindAllow {
				bad(v.Line, k.Value, "unsupported value %q: want deny or allow", v.Value)
			}
		case "schedule":
			w.Schedule = v.Value
			if strings.HasPrefix(v.Value, "TZ=") || strings.HasPrefix(v.Value, "CRON_TZ=") {
				bad(v.Line, k.Value, "give the zone in timeZone, not in the schedule")
				continue
			}
			s, err := parser.Parse(v.Value)
			if err != nil {
				bad(v.Line, k.Value, "invalid cron schedule %q: %v (want 5 fields: minute hour day-of-month month day-of-week)", v.Value, err)
				continue
			}
			// A schedule that never fires (30 February) would cost every
			// search for a block's end robfig's whole five-year scan.
			// Any fixed instant will do: a 5-field schedule fires every
			// year or never.
			if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
				bad(v.Line, k.Value, "cron schedule %q never fires", v.Value)
				continue
			}
			w.sched = s
		case "duration":
			d, err := time.ParseDuration(v.Value)
			switch {
			case err != nil:
				bad(v.Line, k.Value, "invalid duration %q (want a Go duration such as 90m or 64h)", v.Value)
			case d < time.Minute:
				bad(v.Line, k.Value, "%s is shorter than a minute, the schedule's granularity", d)
			default:
				w.Duration = d
			}
		case "timeZone":
			loc, err := time.LoadLocation(v.Value)
			if err != nil || v.Value == "" || v.Value == "Local" {
				bad(v.Line, k.Value, "unknown time zone %q (want an IANA name such as Europe/Berlin, or UTC)", v.Value)
				continue
			}
			w.TimeZone, w.loc = v.Value, loc
		case "manualSync":
			switch v.Value {
			case "true":
				w.ManualSync = true
			case "false":
			default:
				bad(v.Line, k.Value, "must be true or false, not %q", v.Value)
			}
		default:
			bad(k.Line, k.Value, "unknown field (known: kind, schedule, duration, timeZone, manualSync)")
		}
	}
	for _, f := range []string{"kind", "schedule", "duration"} {
		if !seen[f] {
			bad(n.Line, f, "required")
		}
	}
	if w.loc == nil {
		w.loc = time.UTC
	}
	return w, ok
}

// active reports whether w is open at t: one of its schedule's times s
// has s <= t < s+Duration. Next returns the first time strictly after
// its argument, so s = Next(t-Duration) is the earliest opening whose
// window still lasts at t.
func (w *Window) active(t time.Time) bool {
	s := w.sched.Next(t.Add(-w.Duration).In(w.loc))
	return !s.IsZero() && !s.After(t)
}

// openUntil is the end of w's open stretch around t, where w is active
// at t: the end of the window open at t, extended by every window that
// opens before the previous one closes (a schedule every hour with a
// duration of two hours never closes). steps counts the schedule's
// openings looked at; zero when the stretch does not end within limit.
func (w *Window) openUntil(t, limit time.Time, steps *int) time.Time {
	s := w.sched.Next(t.Add(-w.Duration).In(w.loc))
	end := s.Add(w.Duration)
	for *steps < MaxSteps {
		*steps++
		s = w.sched.Next(s)
		if s.IsZero() || s.After(end) {
			return end
		}
		end = s.Add(w.Duration)
		if end.After(limit) {
			return time.Time{}
		}
	}
	return time.Time{}
}

// Search bounds of Active: how far ahead, and through how many openings
// of the windows, it looks for the end of a block. A deny window that
// opens every minute for two minutes is followed about 45 days in
// MaxSteps.
const (
	Horizon  = 366 * 24 * time.Hour
	MaxSteps = 1 << 16
)

// Active decides whether applying a revision at now is blocked by
// windows, why (reason names the first active deny window, or says that
// no allow window is open), and until when: the first time after now at
// which no deny window is active and, if allow windows exist, one of them
// is. until is zero when the block does not end within Horizon (or
// MaxSteps changes), and when nothing blocks.
func Active(windows []Window, now time.Time) (blocked bool, until time.Time, reason string) {
	blocked, why := blockedAt(windows, now)
	if !blocked {
		return false, time.Time{}, ""
	}
	reason = "outside every allow window"
	if why >= 0 {
		reason = windows[why].String()
	}
	// From a blocked t, the block lasts at least until every deny window
	// open at t has closed (the union of their open stretches), or with
	// none open, until an allow window opens: only there can it end.
	limit := now.Add(Horizon)
	t, steps := now, 0
	for steps < MaxSteps {
		steps++
		var next time.Time
		denied := false
		for i := range windows {
			w := &windows[i]
			if w.Kind != KindDeny || !w.active(t) {
				continue
			}
			denied = true
			e := w.openUntil(t, limit, &steps)
			if e.IsZero() {
				return true, time.Time{}, reason
			}
			if e.After(next) {
				next = e
			}
		}
		if !denied {
			for i := range windows {
				w := &windows[i]
				if w.Kind != KindAllow {
					continue
				}
				if o := w.sched.Next(t.In(w.loc)); !o.IsZero() && (next.IsZero() || o.Before(next)) {
					next = o
				}
			}
		}
		if next.IsZero() || next.After(limit) {
			return true, time.Time{}, reason
		}
		t = next
		if b, _ := blockedAt(windows, t); !b {
			return true, t, reason
		}
	}
	return true, time.Time{}, reason
}

// blockedAt is the rule at one instant; why is the index of the first
// active deny window, or -1 when the block is that no allow window is
// open.
func blockedAt(windows []Window, t time.Time) (blocked bool, why int) {
	hasAllow, allowActive := false, false
	for i := range windows {
		w := &windows[i]
		switch w.Kind {
		case KindDeny:
			if w.active(t) {
				return true, i
			}
		case KindAllow:
			hasAllow = true
			if !allowActive && w.active(t) {
				allowActive = true
			}
		}
	}
	return hasAllow && !allowActive, -1
}

// ManualAllowed reports whether a manual sync may apply a revision at now
// despite the windows, as Argo CD decides: with deny windows active, when
// every one of them has manualSync; with none active but allow windows
// all closed, when one of those has manualSync. It is true when nothing
// blocks.
func ManualAllowed(windows []Window, now time.Time) bool {
	denyActive, denyManual := false, true
	hasAllow, allowActive, allowManual := false, false, false
	for i := range windows {
		w := &windows[i]
		on := w.active(now)
		switch {
		case w.Kind == KindDeny && on:
			denyActive = true
			denyManual = denyManual && w.ManualSync
		case w.Kind == KindAllow:
			hasAllow = true
			allowActive = allowActive || on
			allowManual = allowManual || (!on && w.ManualSync)
		}
	}
	switch {
	case denyActive:
		return denyManual
	case hasAllow && !allowActive:
		return allowManual
	}
	return true
}
