package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"bosun/ingress"
	"bosun/nodes"
	"bosun/podnet"
	"bosun/proxy"
	"bosun/server"
	"bosun/store"
)

// proxyFlags are the Service proxy's flags, shared by server and agent.
type proxyFlags struct {
	on      bool
	table   string
	cleanup bool
	// The ingress proxy (package ingress): off unless an address is given.
	ingressListen, ingressTLSListen, ingressAccessLog string
}

func (f *proxyFlags) declare(fs *flagSet) {
	fs.BoolVar(&f.on, "proxy", true, "program this node's Service virtual IPs (ClusterIPs and node ports) in the nftables table --proxy-table; false: no Service VIPs on this node")
	fs.StringVar(&f.table, "proxy-table", proxy.DefaultTable, "the Service proxy's nftables table (family ip); agents of different clusters that share a network namespace each need their own")
	fs.StringVar(&f.ingressListen, "ingress-listen", "", "serve the cluster's Ingresses over HTTP on this address (e.g. 0.0.0.0:80); empty: off")
	fs.StringVar(&f.ingressTLSListen, "ingress-tls-listen", "", "serve the cluster's Ingresses over HTTPS on this address (e.g. 0.0.0.0:443), certificates by SNI from the Ingresses' tls Secrets; empty: off")
	fs.StringVar(&f.ingressAccessLog, "ingress-access-log", "-", "`FILE` the ingress proxy appends its access log to, one JSON line per request (\"-\": standard output; \"\": none)")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the Service proxy's table (--proxy-table) from this machine and exit (0 also when there is none)")
}

func (f *proxyFlags) validate() error {
	if err := proxy.CheckTableName(f.table); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--proxy-table: %w", err)}
	}
	return nil
}

// needsAgent refuses the ingress proxy on a server without its node agent:
// the proxy sends requests straight to pods, and only an agent sets up the
// routes to the pod subnets (this node's and the others').
func (f *proxyFlags) needsAgent(agent bool) error {
	if agent || f.ingressListen == "" && f.ingressTLSListen == "" {
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("server: --ingress-listen and --ingress-tls-listen need this machine's node agent (--agent, on by default): the ingress proxy sends requests straight to pods, which only a node reaches; drop --agent=false, or run the proxy on a node (bosun agent --ingress-listen ...)")}
}

// ingressConfig is the ingress proxy's configuration, nil when it is off.
// The access log file is opened here (and stays open for the process).
func (f *proxyFlags) ingressConfig() (*ingress.Config, error) {
	if f.ingressListen == "" && f.ingressTLSListen == "" {
		return nil, nil
	}
	cfg := &ingress.Config{Listen: f.ingressListen, TLSListen: f.ingressTLSListen}
	switch f.ingressAccessLog {
	case "":
	case "-":
		cfg.AccessLog = os.Stdout
	default:
		fl, err := os.OpenFile(f.ingressAccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--ingress-access-log: %w", err)}
		}
		cfg.AccessLog = io.Writer(fl)
	}
	return cfg, nil
}

// runCleanup removes the table, as --cleanup asks.
func (f *proxyFlags) runCleanup(log *slog.Logger) error {
	if err := proxy.Cleanup(proxy.Config{Table: f.table, Logger: log}); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	log.Info("removed the Service proxy's table", "table", f.table)
	return nil
}

// runAgent runs a node agent and, unless --proxy=false, the Service proxy
// beside it, and unless --dns=false the node's cluster DNS, on a cache of
// their own that holds only what they read (services, pods and their
// statuses), until ctx ends.
func runAgent(ctx context.Context, agent *nodes.Agent, st *store.Store, px proxyFlags, nd nodeDNSFlags, reg prometheus.Registerer, log *slog.Logger) error {
	var pn sync.WaitGroup
	defer pn.Wait()
	pctx, stopPodnet := context.WithCancel(ctx)
	defer stopPodnet()
	pn.Go(func() { runPodNetwork(pctx, agent, st, reg, log) })
	ingCfg, err := px.ingressConfig()
	if err != nil {
		return err
	}
	if !px.on && !nd.on && ingCfg == nil {
		return agent.Run(ctx)
	}
	cc := proxy.CacheConfig() // what the DNS reads too
	cc.Registerer, cc.Logger = reg, log
	var ing *ingress.Server
	if ingCfg != nil {
		// Ingresses, their classes and TLS Secrets too (the agent reads
		// Secrets with the servers' keyring).
		for _, p := range ingress.CachePrefixes {
			if !slices.Contains(cc.Prefixes, p) {
				cc.Prefixes = append(cc.Prefixes, p)
			}
		}
		ingCfg.Registerer, ingCfg.Logger = reg, log
		if ing, err = ingress.New(*ingCfg); err != nil {
			return err
		}
	}
	cache := store.NewCache(st, cc)
	runner := proxy.New(proxy.RunConfig{Table: px.table, Registerer: reg, Logger: log}, cache)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { cache.Run(ctx) })
	if px.on {
		wg.Go(func() {
			select {
			case <-agent.Registered(): // an agent that refuses to start changes nothing here
				runner.Run(ctx)
			case <-ctx.Done():
			}
		})
	}
	if ing != nil {
		wg.Go(func() {
			if err := ing.Run(ctx, cache); err != nil {
				log.Error("the ingress proxy stopped: this node serves no Ingresses", "err", err)
			}
		})
	}
	if nd.on {
		wg.Go(func() {
			if err := runNodeDNS(ctx, nd, agent, cache, reg, log); err != nil {
				log.Error("the node's cluster DNS stopped: pods on this node resolve no cluster names", "err", err)
			}
		})
	}
	err = agent.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// runPodNetwork keeps the routes to other nodes' pods once the agent has
// registered (podnet.Run); a failure is logged, not fatal.
func runPodNetwork(ctx context.Context, agent *nodes.Agent, st *store.Store, reg prometheus.Registerer, log *slog.Logger) {
	select {
	case <-agent.Registered():
	case <-ctx.Done():
		return
	}
	cfg, err := server.PodNetConfig(agent, reg, log)
	if err == nil {
		err = podnet.Run(ctx, cfg, st)
	}
	if err != nil {
		log.Error("no routes to other nodes' pods", "component", "podnet", "err", err)
	}
}
