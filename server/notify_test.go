package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bosun/canary"
	"bosun/notify"
	"bosun/store"
)

// TestChanged_aNewRevisionSupersedesTheProgressingOne follows the history
// book through a revision's life and pins what each write notifies.
func TestChanged_aNewRevisionSupersedesTheProgressingOne(t *testing.T) {
	now := time.Unix(1700000000, 0)
	b := book{limit: 10}
	step := func(f func(h *book)) []string {
		h := b.clone()
		f(&h)
		var out []string
		for _, e := range changed(b, h) {
			ev, ok := eventOf(e, "main")
			if !ok {
				out = append(out, "none:"+e.Result)
				continue
			}
			out = append(out, ev.Type+":"+ev.Commit+":"+ev.Branch)
		}
		b = h
		return out
	}
	rev := func(c string) store.Revision { return store.Revision{Commit: c, Message: "commit " + c} }
	for i, tc := range []struct {
		f    func(h *book)
		want string
	}{
		{func(h *book) { h.add(store.HistoryEntry{Revision: rev("a"), Result: store.ResultProgressing}) }, "[RevisionApplied:a:main]"},
		{func(h *book) {}, "[]"},
		{func(h *book) {
			h.add(store.HistoryEntry{Revision: rev("b"), Result: store.ResultRejected, Errors: []string{"deploy/web.yaml:3: kind: unknown"}})
		}, "[RevisionRejected:b:main]"},
		{func(h *book) { h.add(store.HistoryEntry{Revision: rev("c"), Result: store.ResultProgressing}) }, "[RevisionSuperseded:a:main RevisionApplied:c:main]"},
		{func(h *book) {
			h.addCanary([]canary.Event{{Namespace: "default", Name: "web", Branch: "try", Commit: "d", Reason: canary.EventStarted, Message: "weight 10%"}}, now)
		}, "[CanaryStarted:d:try]"},
		{func(h *book) {
			h.entries[1].Result, h.entries[1].ReadyAfter = store.ResultApplied, store.Duration(3*time.Second)
		}, "[RolloutComplete:c:main]"},
	} {
		if got := fmt.Sprint(step(tc.f)); got != tc.want {
			t.Errorf("step %d: %s, want %s", i, got, tc.want)
		}
	}
}

func TestEventOf(t *testing.T) {
	for _, tc := range []struct {
		e                       store.HistoryEntry
		typ, msg, reason, canry string
	}{
		{store.HistoryEntry{Result: store.ResultRejected, Errors: []string{"a.yaml:1: x", "b.yaml:2: y"}}, notify.RevisionRejected, "revision rejected (2 errors)", "a.yaml:1: x", ""},
		{store.HistoryEntry{Result: store.ResultRolloutFailed, Errors: []string{"Deployment default/web: progress deadline exceeded"}}, notify.RolloutFailed, "rollout failed", "Deployment default/web: progress deadline exceeded", ""},
		{store.HistoryEntry{Result: store.ResultApplied, ReadyAfter: store.Duration(2340 * time.Millisecond)}, notify.RolloutComplete, "rollout complete in 2.3s", "", ""},
		{store.HistoryEntry{Result: "held (sync window until 2025-01-01T18:00:00Z)"}, notify.RevisionHeld, "revision held", "held (sync window until 2025-01-01T18:00:00Z)", ""},
		{store.HistoryEntry{Result: store.ResultCanaryAborted, Canary: "default/web", Branch: "try", Detail: "3 restarts"}, notify.CanaryAborted, "canary aborted default/web", "3 restarts", "default/web"},
	} {
		tc.e.Commit, tc.e.Seq = "0123456789abcdef", 9
		ev, ok := eventOf(tc.e, "main")
		if !ok || ev.Type != tc.typ || !strings.HasPrefix(ev.Message, tc.msg) || ev.Reason != tc.reason || ev.Canary != tc.canry || ev.ID != "9-0123456789ab-"+tc.typ {
			t.Errorf("%s: %+v", tc.e.Result, ev)
		}
	}
	if _, ok := eventOf(store.HistoryEntry{Result: "something new"}, "main"); ok {
		t.Error("an unknown result is notified")
	}
}

// TestStartNotify_newLeaderResendsTheNewestStatusOnly: a new leader sends
// the newest main revision's status to the status sinks, and nothing to
// the webhook (at most once there).
func TestStartNotify_newLeaderResendsTheNewestStatusOnly(t *testing.T) {
	calls := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- r.URL.Path + " " + string(b)
	}))
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := notify.Parse("n.yaml", []byte(fmt.Sprintf("sinks:\n- {type: github, url: %s, repo: a/b, tokenFile: %s}\n- {type: webhook, url: %s/hook}\n", srv.URL, token, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	l := &leader{cfg: Config{Branch: "main", notifier: notify.New(nc, notify.Options{})}, history: book{limit: 10}}
	l.history.add(store.HistoryEntry{Revision: store.Revision{Commit: "aaa"}, Result: store.ResultApplied})
	l.history.addCanary([]canary.Event{{Namespace: "default", Name: "web", Commit: "ccc", Reason: canary.EventStarted}}, time.Now())
	stop := l.startNotify(t.Context())
	select {
	case c := <-calls:
		if !strings.HasPrefix(c, "/repos/a/b/statuses/aaa ") || !strings.Contains(c, `"state":"success"`) {
			t.Errorf("resent %s", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status resent")
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	select {
	case c := <-calls:
		t.Errorf("another call: %s", c)
	default:
	}
}
