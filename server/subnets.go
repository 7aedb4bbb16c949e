package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/dns"
	"bosun/nodes"
	"bosun/podcidr"
	"bosun/podnet"
	"bosun/store"
)

// PodNetwork is the cluster's pod network, as the leader gives it out:
// node subnets cut from ClusterCIDR, and the backend agents route between
// nodes with. The zero value is 10.88.0.0/16 in /24s over host-gw.
type PodNetwork struct {
	ClusterCIDR string // --cluster-cidr, default 10.88.0.0/16
	MaskSize    int    // --node-cidr-mask-size, default 24
	Backend     string // --backend: host-gw (default) or vxlan
}

// withDefaults fills in the zero fields.
func (p PodNetwork) withDefaults() PodNetwork {
	if p.ClusterCIDR == "" {
		p.ClusterCIDR = "10.88.0.0/16"
	}
	if p.MaskSize == 0 {
		p.MaskSize = 24
	}
	if p.Backend == "" {
		p.Backend = store.BackendHostGW
	}
	return p
}

// config checks p and returns the allocator's configuration.
func (p PodNetwork) config() (podcidr.Config, error) {
	cidr, err := netip.ParsePrefix(p.ClusterCIDR)
	if err != nil {
		return podcidr.Config{}, fmt.Errorf("--cluster-cidr %q: %w", p.ClusterCIDR, err)
	}
	c := podcidr.Config{ClusterCIDR: cidr, MaskSize: p.MaskSize}
	if err := c.Validate(); err != nil {
		return podcidr.Config{}, err
	}
	switch p.Backend {
	case store.BackendHostGW, store.BackendVXLAN:
	default:
		return podcidr.Config{}, fmt.Errorf("--backend %q: want %s or %s", p.Backend, store.BackendHostGW, store.BackendVXLAN)
	}
	return c, nil
}

// subnetMetrics are the node subnet allocator's, on every replica (the
// leader's move).
type subnetMetrics struct {
	allocations prometheus.Counter
	refusals    prometheus.Counter
	free        prometheus.Gauge
	syncs       *prometheus.CounterVec
}

func newSubnetMetrics(reg prometheus.Registerer) *subnetMetrics {
	m := &subnetMetrics{
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_node_subnet_allocations_total", Help: "Pod subnets the leader recorded for nodes (given from the cluster CIDR or asked for with --pod-cidr).",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_node_subnet_refusals_total", Help: "Node subnet requests the leader refused (an overlap with another node's, another subnet than the recorded one, the cluster CIDR exhausted).",
		}),
		free: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bosun_node_subnets_free", Help: "Node subnets of the cluster CIDR no node holds (as the leader last counted).",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_node_subnet_syncs_total", Help: "Passes of the leader's node subnet allocator, by result (ok, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.allocations, m.refusals, m.free, m.syncs)
	return m
}

// subnets is the leader's node subnet allocator: on every change of the
// nodes or of their records it plans (podcidr.Plan) and writes the
// records, fenced. Only the leader's loop calls it.
type subnets struct {
	cfg     podcidr.Config
	network store.ClusterNetwork
	st      *store.Store
	apply   func(context.Context, []store.Op) error
	log     *slog.Logger
	m       *subnetMetrics
	// held are the nodes that held a subnet at the last pass: one whose
	// record is gone since, and that is not registered, was deleted.
	held map[string]bool
	// published is set once the cluster network is written.
	published bool
}

func newSubnets(p PodNetwork, st *store.Store, apply func(context.Context, []store.Op) error, log *slog.Logger, m *subnetMetrics) (*subnets, error) {
	p = p.withDefaults()
	cfg, err := p.config()
	if err != nil {
		return nil, err
	}
	return &subnets{cfg: cfg, st: st, apply: apply, log: log, m: m, held: map[string]bool{},
		network: store.ClusterNetwork{ClusterCIDR: cfg.ClusterCIDR.String(), NodeCIDRMaskSize: cfg.MaskSize, Backend: p.Backend}}, nil
}

// sync writes the cluster network (once per leadership) and the records
// the plan asks for. It returns the nodes deleted since the last pass
// (bosun node delete): their pods are lost now, without a grace period.
func (s *subnets) sync(ctx context.Context) (deleted []string, err error) {
	defer func() {
		if err != nil {
			s.m.syncs.WithLabelValues("error").Inc()
		} else {
			s.m.syncs.WithLabelValues("ok").Inc()
		}
	}()
	if !s.published {
		prev, ok, err := s.st.ClusterNetwork(ctx)
		if err != nil {
			return nil, err
		}
		if !ok || prev != s.network {
			op, err := store.PutClusterNetwork(s.network)
			if err != nil {
				return nil, err
			}
			if err := s.apply(ctx, []store.Op{op}); err != nil {
				return nil, fmt.Errorf("write the cluster network: %w", err)
			}
			if ok {
				s.log.Warn("the cluster network changed; agents follow it (subnets given before stay with their nodes)",
					"was", fmt.Sprintf("%+v", prev), "now", fmt.Sprintf("%+v", s.network))
			} else {
				s.log.Info("cluster network", "clusterCIDR", s.network.ClusterCIDR, "nodeMaskSize", s.network.NodeCIDRMaskSize, "backend", s.network.Backend)
			}
		}
		s.published = true
	}
	registered, err := s.st.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	records, _, err := s.st.NodeSubnets(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*podcidr.Node{}
	node := func(name string) *podcidr.Node {
		n := byName[name]
		if n == nil {
			n = &podcidr.Node{Name: name}
			byName[name] = n
		}
		return n
	}
	for _, rn := range registered {
		n := node(rn.Name)
		n.Registered = true
		if rn.Spec.PodCIDR != "" {
			p, err := netip.ParsePrefix(rn.Spec.PodCIDR)
			if err != nil {
				s.log.Warn("node asks for a pod subnet that is no prefix; ignored", "node", rn.Name, "podCIDR", rn.Spec.PodCIDR)
				continue
			}
			n.Request = p
		}
	}
	for name, r := range records {
		n := node(name)
		if r.PodCIDR != "" {
			p, err := netip.ParsePrefix(r.PodCIDR)
			if err != nil {
				return nil, fmt.Errorf("%s: pod CIDR %q: %w", store.NodeSubnetKey(name), r.PodCIDR, err)
			}
			n.Record = p
		}
		n.Refused = r.Refused
		if r.RefusedRequest != "" {
			n.RefusedRequest, _ = netip.ParsePrefix(r.RefusedRequest)
		}
	}
	list := make([]podcidr.Node, 0, len(byName))
	for _, n := range byName {
		list = append(list, *n)
	}
	res := podcidr.Plan(s.cfg, list)
	var ops []store.Op
	for name, p := range res.Assign {
		op, err := store.PutNodeSubnet(store.NodeSubnet{Node: name, PodCIDR: p.String()})
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for name, r := range res.Refuse {
		rec := records[name]
		rec.Node, rec.Refused, rec.RefusedRequest = name, r.Reason, ""
		if r.Request.IsValid() {
			rec.RefusedRequest = r.Request.String()
		}
		op, err := store.PutNodeSubnet(rec)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for _, name := range res.Clear {
		rec := records[name]
		rec.Refused, rec.RefusedRequest = "", ""
		op, err := store.PutNodeSubnet(rec)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for _, name := range res.Drop {
		ops = append(ops, store.DeleteNodeSubnet(name))
	}
	if len(ops) > 0 {
		if err := s.apply(ctx, ops); err != nil {
			return nil, fmt.Errorf("write node subnets: %w", err)
		}
	}
	for name, p := range res.Assign {
		s.m.allocations.Inc()
		s.log.Info("node subnet given", "node", name, "podCIDR", p.String(), "asked", byName[name].Request.IsValid())
	}
	for name, r := range res.Refuse {
		s.m.refusals.Inc()
		s.log.Warn("node subnet refused", "node", name, "reason", r.Reason)
	}
	s.m.free.Set(float64(res.Free))
	held := map[string]bool{}
	for name, n := range byName {
		if n.Record.IsValid() {
			held[name] = true
		} else if _, ok := res.Assign[name]; ok {
			held[name] = true
		}
	}
	for name := range s.held {
		if n := byName[name]; !held[name] && (n == nil || !n.Registered) {
			deleted = append(deleted, name)
			s.log.Info("node deleted: its subnet is free and its pods are replaced now", "node", name)
		}
	}
	s.held = held
	return deleted, nil
}

// runPodNetwork keeps this machine's routes to the other nodes' pods once
// its agent has registered (podnet.Run). A failure to start is logged,
// not fatal: pods on this node still run, they only do not reach other
// nodes.
func runPodNetwork(ctx context.Context, agent *nodes.Agent, st *store.Store, reg prometheus.Registerer, log *slog.Logger) error {
	select {
	case <-agent.Registered():
	case <-ctx.Done():
		return nil
	}
	cfg, err := PodNetConfig(agent, reg, log)
	if err == nil {
		err = podnet.Run(ctx, cfg, st)
	}
	if err != nil {
		log.Error("no routes to other nodes' pods", "component", "podnet", "err", err)
	}
	return nil
}

// PodNetConfig is the configuration of podnet.Run for a registered agent.
func PodNetConfig(agent *nodes.Agent, reg prometheus.Registerer, log *slog.Logger) (podnet.RunConfig, error) {
	ip, err := netip.ParseAddr(agent.NodeIP())
	if err != nil {
		return podnet.RunConfig{}, fmt.Errorf("node %s: address %q (--node-ip): %w", agent.NodeName(), agent.NodeIP(), err)
	}
	cidr, err := netip.ParsePrefix(agent.PodCIDR())
	if err != nil {
		return podnet.RunConfig{}, fmt.Errorf("node %s: pod subnet %q: %w", agent.NodeName(), agent.PodCIDR(), err)
	}
	return podnet.RunConfig{Config: podnet.Config{Node: agent.NodeName(), IP: ip, PodCIDR: cidr, Bridge: agent.BridgeName(), Logger: log},
		Registerer: reg}, nil
}

// podDNS serves the cluster DNS on the pods' nameserver address (the
// gateway of the node's pod subnet) once the agent knows it.
func podDNS(ctx context.Context, agent *nodes.Agent, domain string, cache *store.Cache, log *slog.Logger) error {
	select {
	case <-agent.Registered():
	case <-ctx.Done():
		return nil
	}
	srv, err := dns.New(dns.Config{Listen: []string{net.JoinHostPort(agent.DNSServer(), "53")}, Domain: domain, Logger: log}, cache)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// syncSubnets runs the allocator in the leader's loop. plan is true when
// nodes were deleted: they are forgotten at once (no grace) and the loop
// plans now, replacing their pods. A failed pass is retried.
func (l *leader) syncSubnets(ctx context.Context, sn *subnets, cl *cluster, retry *time.Timer) (plan bool, stop error) {
	deleted, err := sn.sync(ctx)
	if err != nil {
		if errors.Is(err, store.ErrNotLeader) || isClosed(l.lead.Done()) {
			return false, errLostLeadership
		}
		if ctx.Err() == nil {
			l.log.Warn("node subnets: will retry", "err", err, "in", retryDelay)
			retry.Reset(retryDelay)
		}
		return false, nil
	}
	if len(deleted) == 0 {
		return false, nil
	}
	if cl.nodes != nil {
		for _, name := range deleted {
			delete(cl.nodes.LastSeen, name)
		}
	}
	return true, nil
}
