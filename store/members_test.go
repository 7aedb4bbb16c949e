package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testCluster starts n embedded members of one cluster on loopback, joined
// the way servers join: the first alone, each next one added as a learner
// (AddLearner), started with the initial cluster, then promoted.
func testCluster(t *testing.T, n int) []*Embedded {
	t.Helper()
	ctx := context.Background()
	start := func(name, initial string) *Embedded {
		peer, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Name: name, PeerURL: "http://" + peer,
			InitialCluster: initial, Join: initial != "", TickMs: 50, ElectionMs: 500})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	members := []*Embedded{start("m0", "")}
	for i := 1; i < n; i++ {
		cli := dialTest(t, members[0].Endpoints())
		peer, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		name := "m" + string(rune('0'+i))
		initial, err := AddLearner(ctx, cli, name, "http://"+peer)
		if err != nil {
			t.Fatal(err)
		}
		e, err := StartEmbedded(ctx, EmbeddedConfig{Dir: t.TempDir(), Name: name, PeerURL: "http://" + peer,
			InitialCluster: initial, Join: true, TickMs: 50, ElectionMs: 500})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		if !e.IsLearner() {
			t.Fatalf("%s joined as a voter; want a learner first", name)
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = Promote(pctx, cli, e.ID())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, e)
	}
	return members
}

func dialTest(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := Dial(endpoints)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func allEndpoints(members []*Embedded) []string {
	var out []string
	for _, m := range members {
		out = append(out, m.Endpoints()...)
	}
	return out
}

func TestMembers_joinAsLearnersThenVoters(t *testing.T) {
	members := testCluster(t, 3)
	cli := dialTest(t, allEndpoints(members))
	h := NewHealthChecker(cli, time.Second).Check(context.Background(), time.Now())
	if h.Voters != 3 || h.Reachable != 3 || !h.Quorum || h.Message() != "" {
		t.Fatalf("health %+v, message %q; want 3 of 3 voters reachable", h, h.Message())
	}
	leaders := 0
	for _, m := range h.Members {
		if m.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d raft leaders in %+v", leaders, h.Members)
	}
	// The same name at another peer URL is refused, naming the way out.
	if _, err := AddLearner(context.Background(), cli, "m1", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "remove it first") {
		t.Errorf("AddLearner of a taken name: %v", err)
	}
}

// A leader whose member is cut off from the quorum (the other two stopped)
// stops acting within the session TTL, by itself: Done closes and Apply
// refuses, without waiting for etcd's request timeout. Health says why.
func TestLeadership_minorityStopsWithinTTL(t *testing.T) {
	members := testCluster(t, 3)
	cli := dialTest(t, members[0].Endpoints()) // only its own member, as a partitioned server
	s := New(cli)
	lead, err := s.Campaign(context.Background(), "a", DefaultSessionTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Close()
	op, _ := PutSyncStatus(&SyncStatus{Leader: "a"})
	if err := lead.Apply(context.Background(), []Op{op}); err != nil {
		t.Fatal(err)
	}
	members[1].Close()
	// The quorum goes while the second member stops (which takes a
	// while): by cut, it is gone.
	closing := time.Now()
	members[2].Close()
	cut := time.Now()
	t.Logf("second member stopped in %s", cut.Sub(closing))
	select {
	case <-lead.Done():
	case <-time.After(DefaultSessionTTL + 2*time.Second):
		t.Fatalf("leadership not lost %s after the quorum went", time.Since(cut))
	}
	stopped := time.Since(cut)
	t.Logf("leadership lost %s after the quorum went (TTL %s; deadline was %s after)", stopped, DefaultSessionTTL, lead.Deadline().Sub(cut))
	// An isolated raft leader still renews leases on its own until its
	// check of the quorum makes it step down, up to an election timeout
	// (500 ms here) after the others went; the majority side's new raft
	// leader gives every lease a whole TTL again when it takes over, so
	// etcd never expires the session before that renewal plus the TTL. The
	// leadership must end at its deadline, and that deadline within TTL +
	// one election timeout of the cut.
	const electionTimeout = 500 * time.Millisecond
	if late := stopped - lead.Deadline().Sub(cut); late > 200*time.Millisecond {
		t.Errorf("stopped acting %s after its deadline", late)
	}
	if stopped > DefaultSessionTTL+electionTimeout+200*time.Millisecond {
		t.Errorf("stopped acting %s after the cut: want within the session TTL (%s) and an election timeout (%s)", stopped, DefaultSessionTTL, electionTimeout)
	}
	begin := time.Now()
	err = lead.Apply(context.Background(), []Op{op})
	if !errors.Is(err, ErrNotLeader) {
		t.Errorf("Apply after the deadline: %v; want ErrNotLeader", err)
	}
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("Apply took %s to refuse", d)
	}
	h := NewHealthChecker(cli, 500*time.Millisecond).Check(context.Background(), time.Now())
	if h.Quorum || h.Voters != 3 {
		t.Fatalf("health %+v: want 3 voters, no quorum", h)
	}
	msg := h.Message()
	for _, want := range []string{"etcd has no quorum", "of 3 members reachable", "m1", "m2", "changes are held until a quorum returns"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// Losing one member of three, the raft leader's, costs a leader that dials
// every member no failed write: Apply rides over the raft election.
func TestLeadership_survivesLossOfOneMember(t *testing.T) {
	members := testCluster(t, 3)
	cli := dialTest(t, allEndpoints(members))
	s := New(cli)
	lead, err := s.Campaign(context.Background(), "a", DefaultSessionTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer lead.Resign(context.Background())
	h := NewHealthChecker(cli, time.Second).Check(context.Background(), time.Now())
	for i, m := range h.Members {
		if m.Leader {
			for _, e := range members {
				if e.Name() == m.Name {
					e.Close()
				}
			}
			t.Logf("stopped the raft leader %s (%d)", m.Name, i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		op, _ := PutSyncStatus(&SyncStatus{Leader: "a", Errors: []string{strings.Repeat("x", n%7)}})
		if err := lead.Apply(context.Background(), []Op{op}); err != nil {
			t.Fatalf("write %d after losing one member: %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-lead.Done():
		t.Fatal("leadership lost with a quorum left")
	default:
	}
}
