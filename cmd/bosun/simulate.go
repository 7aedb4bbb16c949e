package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"bosun/nodes"
	"bosun/store"
)

// simFlags are `bosun agent --simulate N` and its companions: N simulated
// nodes in this process instead of this machine's node.
type simFlags struct {
	nodes         int
	delay         time.Duration
	prefix        string
	podCIDRs      string
	cpu, memory   string
	concurrency   int
	metricsListen string
	set           bool // a --simulate-* flag was given
}

func (f *simFlags) declare(fs *flagSet) {
	fs.IntVar(&f.nodes, "simulate", 0, "run this many SIMULATED nodes instead of this machine's node: they register and report the pods bound to them as running, but run nothing (for scale tests; no containerd)")
	fs.Func("simulate-start-delay", "how long a pod on a simulated node stays ContainerCreating before it is Running and Ready (default 0)", func(v string) error {
		f.set = true
		d, err := time.ParseDuration(v)
		f.delay = d
		return err
	})
	f.prefix, f.podCIDRs, f.cpu, f.memory, f.concurrency = "sim", nodes.DefaultSimulatedPodCIDRs, "8", "32Gi", 32
	str := func(p *string, name, usage string) {
		fs.Func(name, usage+" (default "+*p+")", func(v string) error { f.set = true; *p = v; return nil })
	}
	str(&f.prefix, "simulate-prefix", "simulated nodes are named PREFIX-0001, PREFIX-0002, ...")
	str(&f.podCIDRs, "simulate-pod-cidrs", "range each simulated node's /24 of pod addresses is cut from")
	str(&f.cpu, "simulate-cpu", "CPU capacity of each simulated node")
	str(&f.memory, "simulate-memory", "memory capacity of each simulated node")
	fs.Func("simulate-concurrency", "how many simulated nodes register at once (default 32)", func(v string) error {
		f.set = true
		_, err := fmt.Sscan(v, &f.concurrency)
		return err
	})
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "with --simulate: serve /metrics (pods started and stopped) on this address; a bare :PORT listens on loopback (default: off)")
}

// run runs the simulated nodes until ctx ends. cfg carries the node flags
// they share (labels, taints, --max-pods, --node-ip, the logger).
func (f *simFlags) run(ctx context.Context, cfg nodes.Config, st *store.Store) error {
	if f.nodes < 0 {
		return &exitError{code: 2, err: fmt.Errorf("agent: --simulate %d: want a number of nodes", f.nodes)}
	}
	capacity := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: f.cpu, corev1.ResourceMemory: f.memory} {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return &exitError{code: 2, err: fmt.Errorf("agent: --simulate-%s %q: want a positive quantity", name, v)}
		}
		capacity[name] = q
	}
	cfg.Capacity = capacity
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sim, err := nodes.NewSimulation(nodes.SimConfig{
		Nodes: f.nodes, Prefix: f.prefix, StartDelay: f.delay, PodCIDRs: f.podCIDRs,
		Node: cfg, Concurrency: f.concurrency, Registerer: reg, Logger: cfg.Logger,
	}, st)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("agent: %w", err)}
	}
	if f.metricsListen != "" {
		addr := f.metricsListen
		if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("agent: --metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Logger.Warn("metrics server", "err", err)
			}
		}()
		defer srv.Close()
		cfg.Logger.Info("serving simulation metrics", "addr", l.Addr().String())
	}
	return sim.Run(ctx)
}
