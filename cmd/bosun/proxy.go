package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

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
}

func (f *proxyFlags) declare(fs *flagSet) {
	fs.BoolVar(&f.on, "proxy", true, "program this node's Service virtual IPs (ClusterIPs and node ports) in the nftables table --proxy-table; false: no Service VIPs on this node")
	fs.StringVar(&f.table, "proxy-table", proxy.DefaultTable, "the Service proxy's nftables table (family ip); agents of different clusters that share a network namespace each need their own")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the Service proxy's table (--proxy-table) from this machine and exit (0 also when there is none)")
}

func (f *proxyFlags) validate() error {
	if err := proxy.CheckTableName(f.table); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--proxy-table: %w", err)}
	}
	return nil
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
	if !px.on && !nd.on {
		return agent.Run(ctx)
	}
	cc := proxy.CacheConfig() // what the DNS reads too
	cc.Registerer, cc.Logger = reg, log
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
	if nd.on {
		wg.Go(func() {
			if err := runNodeDNS(ctx, nd, agent, cache, reg, log); err != nil {
				log.Error("the node's cluster DNS stopped: pods on this node resolve no cluster names", "err", err)
			}
		})
	}
	err := agent.Run(ctx)
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
