package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Members of the etcd cluster: servers whose embedded etcd members form one
// cluster add a new server's member as a learner (AddLearner), which the new
// server promotes once it has caught up (Promote); CheckHealth says which
// members this process reaches and whether they have a quorum.

// AddLearner adds a member (named name, reached at peerURL) as a raft
// learner: it receives the log but does not vote, so a member added but not
// started yet never costs the cluster its quorum. It returns the
// --initial-cluster the new member starts with (name=peerURL of every
// member, the new one included). A member already added with that peer URL
// (a join that was interrupted, then tried again) is reused when it never
// started or has that name.
func AddLearner(ctx context.Context, cli *clientv3.Client, name, peerURL string) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		return "", fmt.Errorf("etcd member list: %w", err)
	}
	members := list.Members
	for _, m := range members {
		if m.Name == name && !slices.Contains(m.PeerURLs, peerURL) {
			return "", fmt.Errorf("etcd already has a member named %s, at %s: remove it first (bosun etcd member remove %s), or choose another --etcd-name", name, strings.Join(m.PeerURLs, ","), name)
		}
		if slices.Contains(m.PeerURLs, peerURL) {
			if m.Name != "" && m.Name != name {
				return "", fmt.Errorf("etcd member %s already has peer URL %s", m.Name, peerURL)
			}
			return initialCluster(members, m.ID, name), nil
		}
	}
	for _, m := range members {
		if m.IsLearner {
			// etcd refuses a second learner; one still catching up must be
			// promoted (its server does it) or removed first.
			return "", fmt.Errorf("etcd member %s is still a learner (a server joining): wait until it has joined, or remove it (bosun etcd member remove %s)", displayName(m), displayName(m))
		}
	}
	// etcd refuses a new member until the one it asks has been connected
	// to a majority for a few seconds ("unhealthy cluster"): a member
	// added just before is not counted yet. Such refusals pass.
	actx, cancel := context.WithTimeout(ctx, addMemberTimeout)
	defer cancel()
	for {
		resp, err := cli.MemberAddAsLearner(actx, []string{peerURL})
		if err == nil {
			return initialCluster(resp.Members, resp.Member.ID, name), nil
		}
		if !Transient(err) || actx.Err() != nil {
			return "", fmt.Errorf("etcd member add %s: %w", peerURL, err)
		}
		select {
		case <-actx.Done():
			return "", fmt.Errorf("etcd member add %s: %w", peerURL, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// addMemberTimeout bounds AddLearner's attempts.
const addMemberTimeout = 30 * time.Second

func initialCluster(members []*etcdserverpb.Member, id uint64, name string) string {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == id {
			n = name
		}
		if n == "" {
			continue // another member added but never started: it is not ours to name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// Promote makes a learner member (id) a voting member, once it has caught
// up with the leader's log, trying again until ctx ends. A member that is a
// voter already is done.
func Promote(ctx context.Context, cli *clientv3.Client, id uint64) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := cli.MemberPromote(rctx, id)
		cancel()
		switch {
		case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner), errors.Is(err, rpctypes.ErrGRPCMemberNotLearner):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("promote etcd member %x: %w (last: %v)", id, ctx.Err(), err)
		case errors.Is(err, rpctypes.ErrMemberLearnerNotReady), errors.Is(err, rpctypes.ErrGRPCLearnerNotReady), Transient(err), errors.Is(err, context.DeadlineExceeded):
		default:
			return fmt.Errorf("promote etcd member %x: %w", id, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// IsLearner says whether member id is a learner still, as the members reached
// through cli see it.
func IsLearner(ctx context.Context, cli *clientv3.Client, id uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return false, fmt.Errorf("etcd member list: %w", err)
	}
	for _, m := range list.Members {
		if m.ID == id {
			return m.IsLearner, nil
		}
	}
	return false, fmt.Errorf("etcd member %x is not in the cluster (removed?)", id)
}

// RemoveMember removes the member named name (or, for a member added but
// never started, whose peer URL is name). Removing a member of three leaves
// two, which need both for a quorum: remove a member only to replace it or
// for good.
func RemoveMember(ctx context.Context, cli *clientv3.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	var names []string
	for _, m := range list.Members {
		if m.Name == name || (m.Name == "" && slices.Contains(m.PeerURLs, name)) {
			if len(list.Members) == 1 {
				return fmt.Errorf("etcd member %s is the only one: it cannot be removed", name)
			}
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("etcd member remove %s: %w", name, err)
			}
			return nil
		}
		names = append(names, displayName(m))
	}
	return fmt.Errorf("no etcd member named %s (members: %s)", name, strings.Join(names, ", "))
}

func displayName(m *etcdserverpb.Member) string {
	if m.Name != "" {
		return m.Name
	}
	return strings.Join(m.PeerURLs, ",") + " (not started)"
}

// MemberHealth is one etcd member as a server sees it.
type MemberHealth struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	ClientURL string `json:"clientURL,omitempty"`
	PeerURL   string `json:"peerURL,omitempty"`
	Learner   bool   `json:"learner,omitempty"`
	// Reachable: the member answered a status request within the check's
	// timeout. Leader: it is the raft leader.
	Reachable bool `json:"reachable"`
	Leader    bool `json:"leader,omitempty"`
	// Error is why it is not reachable, or an alarm it raised (NOSPACE).
	Error string `json:"error,omitempty"`
}

// ClusterHealth is what a server knows of the etcd cluster it uses.
type ClusterHealth struct {
	Members []MemberHealth `json:"members"`
	// Voters counts the members that vote (not learners), Reachable those
	// of them this server reaches that have a raft leader.
	Voters    int `json:"voters"`
	Reachable int `json:"reachable"`
	// Quorum: a majority of the voters is reachable and has a leader:
	// writes can be made.
	Quorum    bool      `json:"quorum"`
	CheckedAt time.Time `json:"checkedAt"`
}

// Message says what the health means for users: "" with a quorum and every
// member reachable; which members are unreachable; and without a quorum,
// that changes are held until it returns.
func (h *ClusterHealth) Message() string {
	if h == nil {
		return ""
	}
	var down []string
	for _, m := range h.Members {
		if !m.Reachable && !m.Learner {
			down = append(down, m.Name)
		}
	}
	switch {
	case !h.Quorum:
		return fmt.Sprintf("etcd has no quorum: %d of %d members reachable (%s unreachable); changes are held until a quorum returns",
			h.Reachable, h.Voters, strings.Join(down, ", "))
	case len(down) > 0:
		return fmt.Sprintf("etcd: %d of %d members reachable (%s unreachable); the cluster works while a majority is", h.Reachable, h.Voters, strings.Join(down, ", "))
	}
	return ""
}

// ErrNoQuorum is what a server answers a change while its etcd cluster has
// no quorum, wrapped with the health's Message.
var ErrNoQuorum = errors.New("etcd has no quorum")

// HealthChecker checks the members of the etcd cluster cli uses. It keeps the
// last member list it read, so that it still names the members when none
// answers a member list.
type HealthChecker struct {
	cli     *clientv3.Client
	timeout time.Duration
	mu      sync.Mutex
	members []*etcdserverpb.Member
}

// NewHealthChecker checks with requests of at most timeout each (default
// 1 s).
func NewHealthChecker(cli *clientv3.Client, timeout time.Duration) *HealthChecker {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &HealthChecker{cli: cli, timeout: timeout}
}

// Check reads the member list (serializable: any reachable member answers,
// with or without a quorum) and asks each member for its status, at once.
func (c *HealthChecker) Check(ctx context.Context, now time.Time) ClusterHealth {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	list, err := c.cli.MemberList(lctx, clientv3.WithSerializable())
	cancel()
	c.mu.Lock()
	if err == nil && len(list.Members) > 0 {
		c.members = list.Members
	}
	members := c.members
	c.mu.Unlock()
	if len(members) == 0 {
		// Nothing known yet: the endpoints this client dials stand for them.
		for _, ep := range c.cli.Endpoints() {
			members = append(members, &etcdserverpb.Member{Name: hostOf(ep), ClientURLs: []string{ep}})
		}
	}
	h := ClusterHealth{CheckedAt: now, Members: make([]MemberHealth, len(members))}
	var wg sync.WaitGroup
	for i, m := range members {
		mh := MemberHealth{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), Learner: m.IsLearner}
		if mh.Name == "" {
			mh.Name = displayName(m)
		}
		if len(m.PeerURLs) > 0 {
			mh.PeerURL = m.PeerURLs[0]
		}
		if len(m.ClientURLs) == 0 {
			mh.Error = "not started"
			h.Members[i] = mh
			continue
		}
		mh.ClientURL = m.ClientURLs[0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, c.timeout)
			st, err := c.cli.Status(sctx, mh.ClientURL)
			cancel()
			switch {
			case err != nil:
				mh.Error = err.Error()
			case st.Leader == 0:
				mh.Error = "no raft leader (cut off from the other members?)"
			default:
				mh.Reachable = true
				mh.Leader = st.Leader == st.Header.MemberId
				if len(st.Errors) > 0 {
					mh.Error = strings.Join(st.Errors, "; ")
				}
			}
			h.Members[i] = mh
		}()
	}
	wg.Wait()
	for _, m := range h.Members {
		if m.Learner {
			continue
		}
		h.Voters++
		if m.Reachable {
			h.Reachable++
		}
	}
	h.Quorum = h.Voters > 0 && h.Reachable > h.Voters/2
	return h
}

func hostOf(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}
