package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"bosun/api"
	"bosun/store"
)

// eventsApp is a Deployment whose pods read a Secret, and a pod whose
// readiness probe fails.
const eventsApp = `apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: ` + plantedEventSecret + `
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: localhost/bosun-hello:v1
        env:
        - name: PASSWORD
          valueFrom:
            secretKeyRef: {name: creds, key: password}
---
apiVersion: v1
kind: Pod
metadata:
  name: not-ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/bosun-hello:v1
    env:
    - {name: FAIL_READY, value: "1"}
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
`

// plantedEventSecret must never appear in an event.
const plantedEventSecret = "planted-event-secret-7f3a"

// TestEvents: a commit's Deployment brings the leader's RevisionApplied
// and Scheduled events and the agent's Pulled and Started ones for its
// pods; a failing readiness probe an Unhealthy event with the probe's
// message; a bad commit a RevisionRejected event naming file:line; all
// read through GET /api/v1/events with the API token, and none carries a
// Secret's value.
func TestEvents(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.write("app.yaml", eventsApp)
	good := repo.commit("web and a pod that is never ready")
	s := startStack(t, repo)

	events := func(query string) []store.Event {
		var list api.EventList
		if err := s.getJSON("/api/v1/events"+query, &list); err != nil {
			t.Fatal(err)
		}
		return list.Events
	}
	find := func(evs []store.Event, match func(store.Event) bool) []store.Event {
		var out []store.Event
		for _, e := range evs {
			if match(e) {
				out = append(out, e)
			}
		}
		return out
	}
	s.waitFor("RevisionApplied, and Scheduled, Pulled and Started for both web pods", 3*time.Minute, func() error {
		evs := events("")
		applied := find(evs, func(e store.Event) bool {
			return e.Reason == "RevisionApplied" && e.Object.Kind == "Revision" && strings.HasPrefix(good, e.Object.Name) && e.Source == "leader"
		})
		if len(applied) != 1 {
			return fmt.Errorf("RevisionApplied for %s: %d in %s", good[:7], len(applied), summary(evs))
		}
		webPods := map[string]bool{}
		for _, p := range s.pods() {
			if strings.HasPrefix(p.Name, "web-") {
				webPods[p.Name] = true
			}
		}
		if len(webPods) != 2 {
			return fmt.Errorf("web pods %v", webPods)
		}
		for name := range webPods {
			for _, want := range []struct{ reason, source string }{{"Scheduled", "leader"}, {"Pulled", "e2e-node"}, {"Created", "e2e-node"}, {"Started", "e2e-node"}} {
				got := find(evs, func(e store.Event) bool {
					return e.Object == store.ObjectRef{Kind: "Pod", Namespace: "default", Name: name} && e.Reason == want.reason && e.Source == want.source
				})
				if len(got) == 0 {
					return fmt.Errorf("no %s event from %s for %s in %s", want.reason, want.source, name, summary(evs))
				}
			}
		}
		return nil
	})

	// The probe's failures: one Unhealthy event, counted.
	s.waitFor("Unhealthy for not-ready with the probe's message, counted", 2*time.Minute, func() error {
		evs := events("?namespace=default&kind=Pod&name=not-ready")
		for _, e := range evs {
			if e.Object.Name != "not-ready" {
				return fmt.Errorf("filter let through %+v", e)
			}
		}
		got := find(evs, func(e store.Event) bool { return e.Reason == "Unhealthy" && e.Type == store.EventWarning })
		if len(got) == 0 {
			return fmt.Errorf("no Unhealthy in %s", summary(evs))
		}
		if e := got[len(got)-1]; !strings.Contains(e.Message, "Readiness probe failed") || !strings.Contains(e.Message, "500") || e.Count < 2 {
			return fmt.Errorf("Unhealthy %q count %d: want the readiness probe's message (status 500), counted more than once", e.Message, e.Count)
		}
		return nil
	})

	// A bad commit: rejected with file:line.
	repo.write("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\nstringData:\n  not/a/key: "+plantedEventSecret+"\n")
	bad := repo.commit("a Secret with a bad key")
	s.waitFor("RevisionRejected naming bad.yaml:6", time.Minute, func() error {
		got := find(events("?kind=Revision"), func(e store.Event) bool {
			return e.Reason == "RevisionRejected" && strings.HasPrefix(bad, e.Object.Name)
		})
		if len(got) != 1 {
			return fmt.Errorf("%d RevisionRejected for %s", len(got), bad[:7])
		}
		if e := got[0]; e.Type != store.EventWarning || !strings.Contains(e.Message, "bad.yaml:6:") {
			return fmt.Errorf("RevisionRejected %+v: want a Warning naming bad.yaml:6", e)
		}
		return nil
	})

	// Oldest first, limit keeps the newest; the answer is {"events": [...]}.
	all := events("")
	for i := 1; i < len(all); i++ {
		if all[i].LastTime.Before(all[i-1].LastTime) {
			t.Fatalf("events not oldest first at %d: %s", i, summary(all))
		}
	}
	if last := events("?limit=1"); len(last) != 1 || last[0].LastTime.Before(all[len(all)-1].LastTime) {
		t.Errorf("limit=1 gave %s, want the newest", summary(last))
	}
	resp, err := s.get("/api/v1/events?namespace=default&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var raw map[string][]map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || len(raw["events"]) == 0 {
		t.Fatalf("body %s: %v", body, err)
	}
	for _, field := range []string{"id", "type", "reason", "object", "message", "source", "count", "firstTime", "lastTime"} {
		if _, ok := raw["events"][0][field]; !ok {
			t.Errorf("event JSON %v lacks %q", raw["events"][0], field)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, raw["events"][0]["lastTime"].(string)); err != nil {
		t.Errorf("lastTime: %v", err)
	}
	// Without a token: refused.
	anon, err := s.tlsClient().Get(s.url("/api/v1/events"))
	if err != nil {
		t.Fatal(err)
	}
	anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %s, want 401", anon.Status)
	}
	// No event carries the Secret's value.
	if b, _ := json.Marshal(events("")); strings.Contains(string(b), plantedEventSecret) {
		t.Errorf("an event carries the Secret's value: %s", b)
	}
}

// summary lists events one a line, for failures.
func summary(evs []store.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s %s/%s/%s x%d %s: %s", e.Source, e.Type, e.Object.Kind, e.Object.Namespace, e.Object.Name, e.Count, e.Reason, e.Message)
	}
	return b.String()
}
