package syncwindow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"bosun/manifest"
)

func mustParse(t *testing.T, text string) []Window {
	t.Helper()
	ws, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return ws
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse_errorsNameLineAndField(t *testing.T) {
	text := `windows:
- kind: freeze
  schedule: "0 17 * * 5"
  duration: 64h
- kind: deny
  schedule: "0 25 * * *"
  duration: soon
  timeZone: Mars/Olympus
  manualSync: yes
  color: red
- kind: allow
`
	_, err := Parse([]byte(text))
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v, want manifest.Errors", err)
	}
	got := err.Error()
	for _, want := range []string{
		`.bosun/windows.yaml:2: windows[0].kind: unsupported value "freeze": want deny or allow`,
		`.bosun/windows.yaml:6: windows[1].schedule: invalid cron schedule "0 25 * * *"`,
		`.bosun/windows.yaml:7: windows[1].duration: invalid duration "soon"`,
		`.bosun/windows.yaml:8: windows[1].timeZone: unknown time zone "Mars/Olympus"`,
		`.bosun/windows.yaml:9: windows[1].manualSync: must be true or false, not "yes"`,
		`.bosun/windows.yaml:10: windows[1].color: unknown field`,
		`.bosun/windows.yaml:11: windows[2].schedule: required`,
		`.bosun/windows.yaml:11: windows[2].duration: required`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

func TestParse_table(t *testing.T) {
	for _, tc := range []struct {
		name, text, err string
		n               int
	}{
		{name: "empty file", text: "", n: 0},
		{name: "no windows", text: "windows: []\n", n: 0},
		{name: "null windows", text: "windows:\n", n: 0},
		{name: "defaults", text: "windows:\n- {kind: allow, schedule: '0 9 * * 1-5', duration: 8h}\n", n: 1},
		{name: "not a mapping", text: "- kind: deny\n", err: ".bosun/windows.yaml:1: must be a mapping"},
		{name: "unknown top field", text: "freeze: true\n", err: ".bosun/windows.yaml:1: freeze: unknown field"},
		{name: "bad yaml", text: "windows: [\n", err: ".bosun/windows.yaml: not valid YAML"},
		{name: "never fires", text: "windows:\n- {kind: deny, schedule: '0 0 30 2 *', duration: 1h}\n", err: "windows[0].schedule: cron schedule \"0 0 30 2 *\" never fires"},
		{name: "six fields", text: "windows:\n- {kind: deny, schedule: '0 0 17 * * 5', duration: 1h}\n", err: "windows[0].schedule: invalid cron schedule"},
		{name: "descriptor zone", text: "windows:\n- {kind: deny, schedule: 'CRON_TZ=UTC 0 17 * * 5', duration: 1h}\n", err: "give the zone in timeZone"},
		{name: "tiny duration", text: "windows:\n- {kind: deny, schedule: '* * * * *', duration: 10s}\n", err: "shorter than a minute"},
		{name: "negative duration", text: "windows:\n- {kind: deny, schedule: '* * * * *', duration: -1h}\n", err: "shorter than a minute"},
		{name: "Local zone", text: "windows:\n- {kind: deny, schedule: '* * * * *', duration: 1h, timeZone: Local}\n", err: "unknown time zone"},
		{name: "twice", text: "windows:\n- {kind: deny, kind: allow, schedule: '* * * * *', duration: 1h}\n", err: "windows[0].kind: given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := Parse([]byte(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, want %q", err, tc.err)
				}
				if ws != nil {
					t.Fatalf("windows %v with an error", ws)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) != tc.n {
				t.Fatalf("%d windows, want %d", len(ws), tc.n)
			}
			for _, w := range ws {
				if w.TimeZone != "UTC" {
					t.Errorf("zone %q, want UTC by default", w.TimeZone)
				}
			}
		})
	}
}

func TestActive_table(t *testing.T) {
	const fridayFreeze = "- {kind: deny, schedule: '0 17 * * 5', duration: 64h}\n" // Fri 17:00 to Mon 09:00 UTC
	for _, tc := range []struct {
		name, windows, now string
		blocked            bool
		until, reason      string
	}{
		{name: "no windows", windows: "", now: "2024-06-07T18:00:00Z"},
		{name: "deny, before it opens", windows: fridayFreeze, now: "2024-06-07T16:59:59Z"},
		{name: "deny, as it opens", windows: fridayFreeze, now: "2024-06-07T17:00:00Z", blocked: true, until: "2024-06-10T09:00:00Z", reason: "deny window .bosun/windows.yaml:2"},
		{name: "deny, over the weekend", windows: fridayFreeze, now: "2024-06-09T03:00:00Z", blocked: true, until: "2024-06-10T09:00:00Z"},
		{name: "deny, as it closes", windows: fridayFreeze, now: "2024-06-10T09:00:00Z"},
		{name: "crossing midnight", windows: "- {kind: deny, schedule: '0 22 * * *', duration: 4h}\n", now: "2024-06-08T01:30:00Z", blocked: true, until: "2024-06-08T02:00:00Z"},
		{name: "crossing midnight, in a zone", windows: "- {kind: deny, schedule: '0 22 * * *', duration: 4h, timeZone: America/New_York}\n",
			now: "2024-06-08T03:00:00Z", blocked: true, until: "2024-06-08T06:00:00Z"}, // 22:00 EDT = 02:00Z
		{name: "overlapping denies chain", windows: "- {kind: deny, schedule: '0 10 * * *', duration: 2h}\n- {kind: deny, schedule: '0 11 * * *', duration: 3h}\n",
			now: "2024-06-08T10:30:00Z", blocked: true, until: "2024-06-08T14:00:00Z"},
		{name: "a deny reopening as it closes", windows: "- {kind: deny, schedule: '0 * * * *', duration: 1h}\n- {kind: deny, schedule: '0 9 * * *', duration: 30m}\n",
			now: "2024-06-08T10:30:00Z", blocked: true, until: "", reason: "deny window .bosun/windows.yaml:2"},
		{name: "allow, inside", windows: "- {kind: allow, schedule: '0 9 * * 1-5', duration: 8h}\n", now: "2024-06-07T10:00:00Z"},
		{name: "allow, outside", windows: "- {kind: allow, schedule: '0 9 * * 1-5', duration: 8h}\n", now: "2024-06-07T18:00:00Z",
			blocked: true, until: "2024-06-10T09:00:00Z", reason: "outside every allow window"},
		{name: "deny wins over allow", windows: "- {kind: allow, schedule: '0 9 * * *', duration: 8h}\n- {kind: deny, schedule: '0 12 * * *', duration: 1h}\n",
			now: "2024-06-07T12:15:00Z", blocked: true, until: "2024-06-07T13:00:00Z", reason: "deny window .bosun/windows.yaml:3"},
		{name: "deny ends outside every allow", windows: "- {kind: allow, schedule: '0 9 * * *', duration: 4h}\n- {kind: deny, schedule: '0 12 * * *', duration: 3h}\n",
			now: "2024-06-07T12:15:00Z", blocked: true, until: "2024-06-08T09:00:00Z"},
		// Berlin's spring change: 2024-03-31 02:00 CET becomes 03:00 CEST.
		// A window opening at 01:30 for 2h lasts 2 absolute hours: to 04:30 CEST.
		{name: "DST spring, absolute duration", windows: "- {kind: deny, schedule: '30 1 * * *', duration: 2h, timeZone: Europe/Berlin}\n",
			now: "2024-03-31T01:00:00Z", blocked: true, until: "2024-03-31T02:30:00Z"},
		// 02:30 does not exist in Berlin on 2024-03-31: no window that day.
		{name: "DST spring, skipped time", windows: "- {kind: deny, schedule: '30 2 * * *', duration: 1h, timeZone: Europe/Berlin}\n",
			now: "2024-03-31T00:45:00Z"},
		// 02:30 occurs twice in Berlin on 2024-10-27 (00:30Z and 01:30Z): two windows of 1h back to back.
		{name: "DST autumn, repeated time", windows: "- {kind: deny, schedule: '30 2 * * *', duration: 1h, timeZone: Europe/Berlin}\n",
			now: "2024-10-27T00:45:00Z", blocked: true, until: "2024-10-27T02:30:00Z"},
		{name: "never ends", windows: "- {kind: deny, schedule: '* * * * *', duration: 5m}\n", now: "2024-06-07T10:00:00Z", blocked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := mustParse(t, "windows:\n"+tc.windows)
			blocked, until, reason := Active(ws, at(tc.now))
			if blocked != tc.blocked {
				t.Fatalf("blocked %v (%s), want %v", blocked, reason, tc.blocked)
			}
			var want time.Time
			if tc.until != "" {
				want = at(tc.until)
			}
			if tc.until != "" && !until.Equal(want) {
				t.Errorf("until %v, want %v", until, want)
			}
			if tc.until == "" && tc.blocked && !until.IsZero() {
				t.Errorf("until %v, want zero (no end within the horizon)", until)
			}
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", reason, tc.reason)
			}
		})
	}
}

func TestManualAllowed_followsArgoCD(t *testing.T) {
	now := at("2024-06-07T12:15:00Z")
	for _, tc := range []struct {
		name, windows string
		want          bool
	}{
		{"nothing blocks", "", true},
		{"active deny without manualSync", "- {kind: deny, schedule: '0 12 * * *', duration: 1h}\n", false},
		{"active deny with manualSync", "- {kind: deny, schedule: '0 12 * * *', duration: 1h, manualSync: true}\n", true},
		{"two active denies, one without", "- {kind: deny, schedule: '0 12 * * *', duration: 1h, manualSync: true}\n- {kind: deny, schedule: '0 11 * * *', duration: 2h}\n", false},
		{"outside an allow with manualSync", "- {kind: allow, schedule: '0 20 * * *', duration: 1h, manualSync: true}\n", true},
		{"outside an allow without", "- {kind: allow, schedule: '0 20 * * *', duration: 1h}\n", false},
		{"deny without manualSync wins over allow with", "- {kind: allow, schedule: '0 20 * * *', duration: 1h, manualSync: true}\n- {kind: deny, schedule: '0 12 * * *', duration: 1h}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ManualAllowed(mustParse(t, "windows:\n"+tc.windows), now); got != tc.want {
				t.Errorf("ManualAllowed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestActive_property checks, on random windows and times, that a block's
// end is right: blocked at every sampled instant before until, not at
// until; and that deny windows always win.
func TestActive_property(t *testing.T) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"}
	rng := rand.New(rand.NewPCG(12, 6))
	base := at("2024-01-01T00:00:00Z")
	for i := range 150 {
		var sb strings.Builder
		sb.WriteString("windows:\n")
		n := 1 + rng.IntN(4)
		for range n {
			kind := []string{"deny", "allow"}[rng.IntN(2)]
			sched := fmt.Sprintf("%d %s * * %s", rng.IntN(60), []string{"*", fmt.Sprint(rng.IntN(24)), fmt.Sprintf("%d-%d", rng.IntN(12), 12+rng.IntN(12))}[rng.IntN(3)],
				[]string{"*", "1-5", "0,6", fmt.Sprint(rng.IntN(7))}[rng.IntN(4)])
			dur := time.Duration(1+rng.IntN(48*60)) * time.Minute
			fmt.Fprintf(&sb, "- {kind: %s, schedule: '%s', duration: %s, timeZone: %s}\n", kind, sched, dur, zones[rng.IntN(len(zones))])
		}
		ws := mustParse(t, sb.String())
		text := sb.String()
		// Around the DST changes of 2024 more often than not.
		now := base.Add(time.Duration(rng.Int64N(int64(366 * 24 * time.Hour))))
		if rng.IntN(2) == 0 {
			now = []time.Time{at("2024-03-31T00:00:00Z"), at("2024-10-27T00:00:00Z"), at("2024-03-10T06:00:00Z"), at("2024-11-03T05:00:00Z"), at("2024-04-06T15:00:00Z")}[rng.IntN(5)].
				Add(time.Duration(rng.Int64N(int64(4 * time.Hour))))
		}
		blocked, until, reason := Active(ws, now)
		if !blocked {
			if b, _ := blockedAt(ws, now); b || !until.IsZero() || reason != "" {
				t.Fatalf("case %d: not blocked but until %v reason %q\n%s", i, until, reason, text)
			}
			continue
		}
		if until.IsZero() {
			continue
		}
		if !until.After(now) {
			t.Fatalf("case %d at %v: until %v not after now\n%s", i, now, until, text)
		}
		if b, _ := blockedAt(ws, until); b {
			t.Fatalf("case %d at %v: still blocked at until %v\n%s", i, now, until, text)
		}
		for range 20 {
			s := now.Add(time.Duration(rng.Int64N(int64(until.Sub(now)))))
			if b, _ := blockedAt(ws, s); !b {
				t.Fatalf("case %d at %v: not blocked at %v, before until %v\n%s", i, now, s, until, text)
			}
		}
		// Adding a deny window open now always blocks.
		deny := mustParse(t, "windows:\n- {kind: deny, schedule: '* * * * *', duration: 2m}\n")
		if b, _ := blockedAt(append(ws, deny...), now); !b {
			t.Fatalf("case %d: a deny window open now does not block", i)
		}
	}
}

func TestLoad_example(t *testing.T) {
	ws, raw, err := Load("../examples/sync-windows")
	if err != nil || len(ws) != 3 || len(raw) == 0 {
		t.Fatalf("examples/sync-windows: %d windows, %v", len(ws), err)
	}
	if ws[0].Kind != KindAllow || !ws[0].ManualSync || ws[1].TimeZone != "Europe/Berlin" || ws[2].Duration != 384*time.Hour {
		t.Errorf("windows: %+v", ws)
	}
	// Saturday noon in Berlin: the weekend deny window blocks, manual syncs too.
	now := at("2025-03-08T11:00:00Z")
	if b, until, _ := Active(ws, now); !b || !until.Equal(at("2025-03-10T07:00:00Z")) {
		t.Errorf("Saturday: blocked %v until %v, want until Monday 08:00 Berlin", b, until)
	}
	if ManualAllowed(ws, now) {
		t.Error("Saturday: the deny window has no manualSync, yet a manual sync is allowed")
	}
	// Tuesday 20:00 Berlin: outside the allow window, which allows manual syncs.
	now = at("2025-03-11T19:00:00Z")
	if b, _, reason := Active(ws, now); !b || reason != "outside every allow window" || !ManualAllowed(ws, now) {
		t.Errorf("Tuesday evening: blocked %v (%s), manual %v", b, reason, ManualAllowed(ws, now))
	}
	if _, _, err := Load(t.TempDir()); err != nil {
		t.Errorf("a repository without the file: %v", err)
	}
}
