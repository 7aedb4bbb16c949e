package e2e

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestFailover runs two control-plane replicas against one etcd (embedded
// in the test process, standing in for an external cluster). Only one
// leads; when it is killed the other takes over within the session TTL
// and goes on applying Git; both serve the API and DNS throughout.
func TestFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	endpoints := sharedEtcd(t)

	repo := newGitRepo(t)
	repo.write("svc.yaml", webService)
	repo.commit("one service")
	a := startControlPlane(t, repo.dir, "--etcd-endpoints", endpoints, "--id", "replica-a")
	b := startControlPlane(t, repo.dir, "--etcd-endpoints", endpoints, "--id", "replica-b")

	leader := func(s *stack) string {
		st, err := s.status()
		if err != nil {
			return ""
		}
		return st.Leader
	}
	a.waitFor("a leader", 30*time.Second, func() error {
		if l := leader(a); l != "replica-a" && l != "replica-b" {
			return fmt.Errorf("leader %q", l)
		}
		return nil
	})
	first, other, newLeader := a, b, "replica-b"
	if leader(a) == "replica-b" {
		first, other, newLeader = b, a, "replica-a"
	}
	if leader(other) != leader(first) {
		t.Fatalf("replicas disagree on the leader: %q vs %q", leader(first), leader(other))
	}
	// The revision is counted once its fenced write is done, a moment
	// after the election.
	first.waitFor("the leader's /metrics to show it leads and accepted one revision", 10*time.Second, func() error {
		if m := first.metrics(); !strings.Contains(m, "bosun_leader 1") || !strings.Contains(m, `bosun_revisions_total{result="accepted"} 1`) {
			return errors.New("no bosun_leader 1 and one accepted revision yet")
		}
		return nil
	})
	if m := other.metrics(); !strings.Contains(m, "bosun_leader 0") {
		t.Errorf("follower's /metrics lacks bosun_leader 0")
	}
	for _, s := range []*stack{a, b} {
		s.waitFor("DNS on every replica", 10*time.Second, func() error {
			r, err := s.lookup(webName, mdns.TypeA)
			if err != nil || r.Rcode != mdns.RcodeSuccess {
				return fmt.Errorf("%v %v", r, err)
			}
			return nil
		})
	}

	// SIGKILL: the dead leader cannot resign; its session expires.
	killed := time.Now()
	first.stop(syscall.SIGKILL)
	other.waitFor("the other replica to lead", 15*time.Second, func() error {
		if l := leader(other); l != newLeader {
			return fmt.Errorf("leader %q", l)
		}
		return nil
	})
	t.Logf("failover after SIGKILL of the leader: %v", time.Since(killed))
	if m := other.metrics(); !strings.Contains(m, "bosun_leader 1") {
		t.Errorf("new leader's /metrics lacks bosun_leader 1")
	}

	// The new leader applies new commits.
	repo.write("svc.yaml", "")
	second := repo.commit("drop the service")
	if out, err := other.cli("sync"); err != nil {
		t.Fatalf("bosun sync: %v\n%s", err, out)
	}
	other.waitFor("the new leader to apply the commit", 15*time.Second, func() error {
		st, err := other.status()
		if err != nil || st.Sync.Applied == nil || st.Sync.Applied.Commit != second {
			return fmt.Errorf("applied %+v, %v", st.Sync.Applied, err)
		}
		r, err := other.lookup(webName, mdns.TypeA)
		if err != nil || r.Rcode != mdns.RcodeNameError {
			return fmt.Errorf("DNS still answers the dropped service")
		}
		return nil
	})
}

// metrics returns the replica's /metrics page.
func (s *stack) metrics() string {
	s.t.Helper()
	body, err := s.getText("/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	return body
}
