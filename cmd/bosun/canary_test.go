package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bosun/api"
	"bosun/canary"
	"bosun/store"
)

var canaryNow = time.Date(2026, 11, 30, 12, 10, 0, 0, time.UTC)

func plantedCanary() api.CanaryStatus {
	v := 0.01
	max := 0.05
	started := canaryNow.Add(-6 * time.Minute)
	return api.CanaryStatus{Namespace: "default", Name: "web",
		State: canary.State{Namespace: "default", Name: "web", Branch: "canary/web-v2", Commit: "abc123def4567890", Subject: "web v2",
			Hash: "c4n4ry", Phase: canary.Progressing, Step: 1, Weight: 25, StartedAt: started, StepStartedAt: started.Add(5 * time.Minute),
			Checks: []canary.Check{
				{At: started.Add(time.Minute), Signal: "metric", Value: &v, OK: true, Message: "metric: errors = 0.01, within bounds"},
				{At: started.Add(3 * time.Minute), Signal: "metric", Value: &v, OK: true, Message: "metric: errors = 0.02, within bounds"},
			},
			AbortedCommits: []string{"0ld1111111111", "0ld2222222222"}},
		Spec: &api.CanarySpec{Branch: "canary/web-v2", Steps: []int32{5, 25, 50}, Interval: "2m0s", Query: "errors", Max: &max, FailureLimit: 2},
		Pods: []api.CanaryPod{{Name: "web-c4n4ry-0", Ready: true, Status: "Running", Node: "n1", IP: "10.88.0.7"},
			{Name: "web-c4n4ry-1", Status: "Running", Restarts: 0, Node: "n1", IP: "10.88.0.8"}},
		Desired: 2, Ready: 1, Stable: 4, StableReady: 4, StableDesired: 4, Weight: 25, StableWeight: 75,
		NextStepAt: started.Add(7*time.Minute + 30*time.Second), NextStepNeedsCheck: true,
	}
}

func TestPrintCanary_specStatePodsChecksNewestFirstAndAbortedCommits(t *testing.T) {
	c := plantedCanary()
	var b bytes.Buffer
	printCanary(&b, &c, canaryNow)
	want := `Canary:    default/web
Branch:    canary/web-v2 at abc123def4 "web v2"
Phase:     Progressing, step 2 of 3: canary 25%, stable 75% of new connections
Time:      started 6m ago, this step 60s ago
Next step: in 1m30s, once a check made after then passes
Template:  c4n4ry
Spec:      weight 5% -> 25% -> 50%, a step every 2m0s, canary pods for the weight
Gate:      "errors" <= 0.05 every 2m0s, abort after 2 failed in a row
Pods:      canary 1/2 ready, stable 4/4 ready (4 desired)

POD           READY  STATUS   RESTARTS  NODE  IP
web-c4n4ry-0  true   Running  0         n1    10.88.0.7
web-c4n4ry-1  false  Running  0         n1    10.88.0.8

CHECKED  SIGNAL  RESULT  MESSAGE
3m ago   metric  ok      metric: errors = 0.02, within bounds
5m ago   metric  ok      metric: errors = 0.01, within bounds

Aborted commits (never run again; push a new commit to retry): 0ld2222222, 0ld1111111
`
	if got := b.String(); got != want {
		t.Errorf("bosun canary web:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintCanaryTable_andStatusSection(t *testing.T) {
	c := plantedCanary()
	aborted := api.CanarySummary{Namespace: "prod", Name: "api", Branch: "canary/api", Commit: "99887766554433", Phase: canary.Aborted,
		Reason: "readiness: pod api-x-0 not ready for 30s", LastCheck: "readiness: pod api-x-0 not ready for 30s"}
	waiting := api.CanarySummary{Namespace: "prod", Name: "db", Branch: "canary/db", Phase: api.PhaseWaiting, Reason: "waiting for the leader to fetch branch canary/db"}
	st := api.Status{Leader: "r1", Canaries: []api.CanarySummary{c.Summary(), aborted, waiting}}
	st.Sync.Branches = []store.BranchStatus{{Name: "canary/web-v2", Commit: "abc123def4567890"}, {Name: "canary/api"},
		{Name: "canary/gone", Error: "branch canary/gone does not exist in https://git.example/app.git"}}
	var b bytes.Buffer
	printStatus(&b, &st)
	for _, line := range []string{"Branch:   canary/web-v2 at abc123def4\n", "Branch:   canary/api: not fetched yet\n",
		"Branch:   canary/gone: branch canary/gone does not exist in https://git.example/app.git\n"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("bosun status lacks %q:\n%s", line, b.String())
		}
	}
	want := `CANARY       BRANCH@COMMIT             PHASE        WEIGHT  STEP  PODS  ANALYSIS
default/web  canary/web-v2@abc123def4  Progressing  25%     2/3   1/2   metric: errors = 0.02, within bounds
prod/api     canary/api@9988776655     Aborted      -       -     -     readiness: pod api-x-0 not ready for 30s
prod/db      canary/db                 Waiting      -       -     -     waiting for the leader to fetch branch canary/db
`
	if got := b.String(); !strings.Contains(got, "\n\n"+want) {
		t.Errorf("bosun status:\n%s\nwant a section:\n%s", got, want)
	}
	b.Reset()
	printStatus(&b, &api.Status{Leader: "r1"})
	if strings.Contains(b.String(), "CANARY") {
		t.Errorf("a status without canaries has a CANARY section:\n%s", b.String())
	}
}

func TestPrintHistory_canaryEntriesAreDistinct(t *testing.T) {
	items := []store.HistoryEntry{
		{Revision: store.Revision{Commit: "abc123def4567890", Message: "web v2"}, SeenAt: canaryNow.Add(-time.Minute), Result: store.ResultCanaryAborted,
			Canary: "default/web", Branch: "canary/web-v2", Detail: "readiness: pod web-c4n4ry-0 not ready for 30s"},
		{Revision: store.Revision{Commit: "abc123def4567890", Message: "web v2"}, SeenAt: canaryNow.Add(-3 * time.Minute), Result: store.ResultCanaryStarted,
			Canary: "default/web", Branch: "canary/web-v2", Detail: "takes 10% of new connections"},
		{Revision: store.Revision{Commit: "1111111111aaaa", Author: "Ada <ada@example.com>", Message: "web: canary"}, SeenAt: canaryNow.Add(-5 * time.Minute),
			Result: store.ResultApplied, Changes: []store.ObjectChange{{Op: "~", Kind: "Deployment", Namespace: "default", Name: "web"}}},
	}
	var b bytes.Buffer
	printHistory(&b, items, canaryNow)
	want := `COMMIT      AGE  AUTHOR  RESULT          READY AFTER  CHANGES             MESSAGE
abc123def4  60s  -       canary aborted  -            canary default/web  canary/web-v2@abc123def4 aborted: readiness: pod web-c4n4ry-0 not ready for 30s
abc123def4  3m   -       canary started  -            canary default/web  canary/web-v2@abc123def4 started: takes 10% of new connections
1111111111  5m   Ada     applied         -            ~Deployment/web     web: canary
`
	if got := b.String(); got != want {
		t.Errorf("bosun history:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintPlan_canaryBranch(t *testing.T) {
	res := &api.PlanResult{
		Revision: &store.Revision{Commit: "abc123def4567890", Message: "web v2"},
		Current:  &store.Revision{Commit: "1111111111aaaa", Message: "web: canary"},
		Canaries: []api.CanaryPlan{
			{Namespace: "default", Name: "web", Branch: "canary/web-v2", Commit: "abc123def4567890", Phase: canary.Progressing,
				StableHash: "st4bl3", Hash: "c4n4ry", Steps: []int32{10}, Weight: 10, StableWeight: 90, Replicas: 1, StableReplicas: 4,
				Changes: []string{"container app: image hello:v1 -> hello:v2", "container app: env +FEATURE_X"},
				Pods:    []api.CanaryPodPlan{{Op: "start", Name: "web-c4n4ry-0", Node: "n1", Reason: "canary c4n4ry of canary/web-v2 at 10%"}}},
			{Namespace: "default", Name: "api", Branch: "canary/web-v2", Commit: "abc123def4567890", Phase: canary.Failed,
				StableHash: "4p1", Reason: "branch canary/web-v2 at abc123def456 has no Deployment default/api"},
		},
	}
	var b bytes.Buffer
	printPlan(&b, res, "canary/web-v2", "")
	want := `Plan for canary/web-v2 (abc123def4 "web v2") against 1111111111 "web: canary"

Canary of Deployment default/web from branch canary/web-v2@abc123def4:
  runs:     1 canary pod of template c4n4ry beside 4 stable (st4bl3), canary 10% / stable 90% of new connections
  template: differs from main's:
    container app: image hello:v1 -> hello:v2
    container app: env +FEATURE_X
  start default/web-c4n4ry-0 on n1  (canary c4n4ry of canary/web-v2 at 10%)

Canary of Deployment default/api from branch canary/web-v2@abc123def4:
  would not run: Failed: branch canary/web-v2 at abc123def456 has no Deployment default/api

If canary/web-v2 were merged into main:

No changes.
`
	if got := b.String(); got != want {
		t.Errorf("bosun plan --ref canary/web-v2:\n%s\nwant:\n%s", got, want)
	}
}

// TestCmdCanary_pathsAndUsage: NAME, NS/NAME and -n NS ask the API for
// the right canary, the list passes its namespace, -o json prints the
// answer, and bad usage exits 2.
func TestCmdCanary_pathsAndUsage(t *testing.T) {
	userHome(t) // the CLI pins the test server's certificate there
	var asked []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		if r.URL.Path == "/api/v1/canaries" {
			json.NewEncoder(w).Encode(api.CanaryList{Items: []api.CanaryStatus{plantedCanary()}})
			return
		}
		json.NewEncoder(w).Encode(plantedCanary())
	}))
	defer srv.Close()
	for _, args := range [][]string{{"web"}, {"prod/web"}, {"web", "-n", "prod"}, {}, {"-n", "prod"}, {"web", "-o", "json"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append([]string{"canary", "--server", srv.URL}, args...), &out, &errOut); err != nil {
			t.Errorf("bosun canary %q: %v", args, err)
		}
		if !strings.Contains(out.String(), "canary/web-v2") {
			t.Errorf("bosun canary %q printed:\n%s", args, out.String())
		}
	}
	want := []string{"/api/v1/canaries/web", "/api/v1/canaries/prod/web", "/api/v1/canaries/prod/web", "/api/v1/canaries",
		"/api/v1/canaries?namespace=prod", "/api/v1/canaries/web"}
	if strings.Join(asked, " ") != strings.Join(want, " ") {
		t.Errorf("asked %q, want %q", asked, want)
	}
	for _, args := range [][]string{{"canary", "a", "b"}, {"canary", "-o", "wide"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bosun %q: err %v, want exit 2", args, err)
		}
	}
}

func TestPrintHistory_signerColumnWhenVerified(t *testing.T) {
	items := []store.HistoryEntry{
		{Revision: store.Revision{Commit: "2222222222bbbb", Author: "Mallory <m@example.com>", Message: "sneak", Signer: "unsigned"},
			SeenAt: canaryNow.Add(-time.Minute), Result: store.ResultRejected, Errors: []string{"commit 2222222: not signed (--verify-commits is on)"}},
		{Revision: store.Revision{Commit: "1111111111aaaa", Author: "Ada <ada@example.com>", Message: "web", Signer: "ada@example.com (SSH key SHA256:abc ed25519)"},
			SeenAt: canaryNow.Add(-5 * time.Minute), Result: store.ResultApplied},
		{Revision: store.Revision{Commit: "0000000000aaaa", Author: "Ada <ada@example.com>", Message: "before verification"},
			SeenAt: canaryNow.Add(-9 * time.Minute), Result: store.ResultSuperseded},
	}
	var b bytes.Buffer
	printHistory(&b, items, canaryNow)
	// (An error line widens RESULT, as it always has.)
	want := `COMMIT      AGE  AUTHOR   RESULT                                                 READY AFTER  CHANGES  MESSAGE              SIGNER
2222222222  60s  Mallory  rejected                                               -            -        sneak                unsigned
                            commit 2222222: not signed (--verify-commits is on)                                             
1111111111  5m   Ada      applied                                                -            -        web                  ada@example.com (SSH key SHA256:abc ed25519)
0000000000  9m   Ada      superseded                                             -            -        before verification  -
`
	if got := b.String(); got != want {
		t.Errorf("bosun history:\n%s\nwant:\n%s", got, want)
	}
}
