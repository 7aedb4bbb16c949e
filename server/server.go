package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"bosun/api"
	"bosun/dns"
	"bosun/gitsource"
	"bosun/ingress"
	"bosun/ipalloc"
	bjoin "bosun/join"
	"bosun/manifest"
	"bosun/nodes"
	"bosun/notify"
	"bosun/proxy"
	"bosun/signature"
	"bosun/sopsfile"
	"bosun/store"
)

// Config is a replica's configuration. Flags in cmd/bosun fill it.
type Config struct {
	// ID names this replica in the election; default the hostname.
	ID string
	// Repo is the Git repository (path or URL); Branch default "main";
	// Path the manifests' directory inside it (default the root).
	Repo, Branch, Path string
	// Poll is the fetch interval, default 5s.
	Poll time.Duration
	// GitAuth is how the repository's server is reached and trusted: ssh
	// key, known_hosts, HTTPS credentials and CA (see gitsource.Auth).
	GitAuth gitsource.Auth
	// DataDir holds the embedded etcd, the clone and the agent's state;
	// default /var/lib/bosun.
	DataDir string
	// EtcdEndpoints selects an external etcd; empty starts an embedded one.
	EtcdEndpoints []string
	// JoinServer and JoinToken (--server, --token) join this server's
	// embedded etcd member to the cluster of the server at JoinServer (its
	// API URL), with the server token the first server printed; see ha.go.
	// Ignored once the data directory holds a member.
	JoinServer, JoinToken string
	// EtcdPeerListen is where the embedded member listens for its peers
	// and what it advertises to them; default port 2380 on EtcdListen's
	// host when that is a given address beyond loopback (a server that can
	// have peers), else a single member on loopback.
	EtcdPeerListen string
	// EtcdName is the embedded member's name; default ID.
	EtcdName string
	// EtcdListen is the embedded etcd's client address, default
	// 127.0.0.1:2379. Beyond loopback, etcd serves mutual TLS with the
	// cluster CA (see trust), unless Insecure.
	EtcdListen string
	// Insecure lets etcd be reached beyond loopback in plain text without
	// authentication (--insecure); every start warns.
	Insecure bool
	// Stderr receives what is printed once, outside the log (the join
	// token when it is created); default os.Stderr.
	Stderr io.Writer
	// DNSListen default 127.0.0.1:5353; APIListen default 127.0.0.1:7070.
	DNSListen, APIListen string
	// Domain is the cluster domain, default cluster.local.
	Domain string
	// NodeGracePeriod is how long a node may be gone (its lease expired or
	// revoked) before its pods are replaced elsewhere; default 30s.
	NodeGracePeriod time.Duration
	// HistoryLimit bounds the revision history kept in etcd; default 100.
	HistoryLimit int
	// WebhookSecretFile holds the shared secret of Git push webhooks;
	// empty turns webhooks off. WebhookListen serves them alone on another
	// address.
	WebhookSecretFile, WebhookListen string
	// Policy is what manifests may do beyond bosun's defaults (host paths,
	// privileged containers); revisions are validated with it.
	Policy manifest.Policy
	// SOPSAgeKeyFile holds the age identities that decrypt SOPS-encrypted
	// manifests, in memory (--sops-age-key-file); Run reads it once into
	// Policy.Decrypter. Empty: a revision with an encrypted manifest is
	// rejected.
	SOPSAgeKeyFile string
	// Services is where the leader gives Services their ClusterIPs and
	// node ports from (--service-cidr, --node-port-range); the zero value
	// is 10.96.0.0/16 and 30000-32767.
	Services ipalloc.Config
	// PodNetwork is where the leader cuts node pod subnets from
	// (--cluster-cidr, --node-cidr-mask-size) and how agents route
	// between nodes (--backend); the zero value is 10.88.0.0/16 in /24s
	// over host-gw.
	PodNetwork PodNetwork
	// Agent runs a node agent for this machine in the same process.
	Agent     bool
	AgentConf nodes.Config
	// Proxy runs the Service proxy (proxy.Runner) beside the agent, on the
	// replica's cache: this node's Service virtual IPs. Without Agent it
	// does nothing.
	Proxy     bool
	ProxyConf proxy.RunConfig
	// Ingress, when not nil, runs the ingress proxy (package ingress) on
	// the replica's cache (--ingress-listen, --ingress-tls-listen).
	Ingress *ingress.Config
	// API security (issue 10). TokensFile lists the API's bearer tokens
	// (api.ParseTokens), read again when it changes; empty: DataDir/api/tokens,
	// created on the first start with one generated admin token, which is
	// handed to OnAdminToken (once: later starts reuse the stored hash).
	// TLSCertFile and TLSKeyFile are the API's certificate; empty: one
	// issued by the cluster CA into DataDir/api on the first start.
	TokensFile              string
	OnAdminToken            func(token string)
	TLSCertFile, TLSKeyFile string
	// EncryptionKeyFile holds the keys Secret data is encrypted with in
	// etcd (AES-256-GCM; the first encrypts, all decrypt); default
	// <DataDir>/secrets.key, created with one key on a cluster's first
	// start. Every server of a cluster needs the same file.
	EncryptionKeyFile string
	// Measure evaluates canaries' queries (bosun.dev/canary-query) against
	// Prometheus (--prometheus-url); nil fails every query, with that
	// reason.
	Measure Measurer

	// VerifyCommits (--verify-commits) runs only commits signed by a key
	// of TrustedKeysDir (--trusted-keys; see signature.LoadDir): main's
	// head is rejected whole otherwise, like an invalid revision, and a
	// canary branch's head fails its canary. The keys are read once, when
	// Run starts: a bad or empty directory stops the start, and changing
	// the keys takes a restart (which judges a rejected head again).
	VerifyCommits  bool
	TrustedKeysDir string
	trustedKeys    *signature.Keyring // loaded by Run

	// NotifyConfigFile (--notify-config) configures notifications and
	// commit statuses (package notify; server/notify.go); read at start.
	NotifyConfigFile string
	notifier         *notify.Notifier // loaded by validate

	// events records the leader's events (events.go); nil: none.
	events *serverEvents
	// elected runs when this replica wins an election (moveRaftLeader);
	// nil: nothing.
	elected func(context.Context)

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID, _ = os.Hostname()
	}
	if c.Branch == "" {
		c.Branch = "main"
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = 100
	}
	if c.NodeGracePeriod <= 0 {
		c.NodeGracePeriod = 30 * time.Second
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/bosun"
	}
	if c.EtcdListen == "" {
		c.EtcdListen = "127.0.0.1:2379"
	}
	if c.DNSListen == "" {
		c.DNSListen = "127.0.0.1:5353"
	}
	if c.APIListen == "" {
		c.APIListen = "127.0.0.1:7070"
	}
	if c.Domain == "" {
		c.Domain = "cluster.local"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	c.Services = c.Services.WithDefaults()
}

// etcdName is the embedded member's name.
func (c *Config) etcdName() string {
	if c.EtcdName != "" {
		return c.EtcdName
	}
	return c.ID
}

func (c *Config) validate() error {
	if c.Repo == "" {
		return errors.New("--repo is required")
	}
	if err := c.loadTrustedKeys(); err != nil {
		return err
	}
	if err := c.loadSOPSKey(); err != nil {
		return err
	}
	if err := c.loadNotify(); err != nil {
		return err
	}
	if _, err := c.PodNetwork.withDefaults().config(); err != nil {
		return err
	}
	return c.Services.Validate()
}

// loadSOPSKey reads the SOPS age identities into the policy every loader
// of revisions uses (the leader, plans, canary branches).
func (c *Config) loadSOPSKey() error {
	if c.SOPSAgeKeyFile == "" {
		return nil
	}
	dec, err := sopsfile.ReadKeyFile(c.SOPSAgeKeyFile)
	if err != nil {
		return fmt.Errorf("--sops-age-key-file: %w", err)
	}
	c.Policy.Decrypter = dec
	attrs := []any{"file", c.SOPSAgeKeyFile, "recipients", dec.Recipients()}
	if fi, err := os.Stat(c.SOPSAgeKeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.Logger.Warn("the SOPS age key file is readable by other users; chmod 600 it", append(attrs, "mode", fi.Mode().Perm().String())...)
	}
	c.Logger.Info("SOPS-encrypted manifests are decrypted with age identities", attrs...)
	return nil
}

// loadTrustedKeys reads TrustedKeysDir when commits are verified, and logs
// what is trusted.
func (c *Config) loadTrustedKeys() error {
	switch {
	case c.VerifyCommits && c.TrustedKeysDir == "":
		return errors.New("--verify-commits needs --trusted-keys DIR (OpenPGP public keys and an SSH allowed_signers file)")
	case !c.VerifyCommits && c.TrustedKeysDir != "":
		return errors.New("--trusted-keys is given without --verify-commits: add --verify-commits to verify commits against them")
	case !c.VerifyCommits:
		c.Logger.Info("commit signatures are not verified (see --verify-commits)")
		return nil
	}
	keys, err := signature.LoadDir(c.TrustedKeysDir, time.Local)
	if err != nil {
		return fmt.Errorf("--trusted-keys: %w", err)
	}
	for _, f := range keys.Ignored() {
		c.Logger.Warn("--trusted-keys: not a key file, ignored (want *.asc, *.gpg, *.pub or allowed_signers)", "file", f)
	}
	c.Logger.Info("verifying commit signatures; the trusted keys are read at start only", "dir", c.TrustedKeysDir, "keys", keys.Keys())
	c.trustedKeys = keys
	return nil
}

// Run runs a replica until ctx ends. It stops cleanly: the leader resigns
// so another replica takes over at once, the node is deregistered, and the
// pods keep running for the next start to adopt.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	peer, err := peerURL(cfg, beyondLoopback(cfg) != "" && !cfg.Insecure)
	if err != nil {
		return err
	}
	initialCluster, err := joinAsServer(ctx, cfg, peer, log)
	if err != nil {
		return err
	}
	trust, err := setupTrust(cfg, log, cfg.Stderr)
	if err != nil {
		return err
	}
	endpoints := cfg.EtcdEndpoints
	autoSync := false
	if len(endpoints) == 0 {
		ec := store.EmbeddedConfig{
			Dir: filepath.Join(cfg.DataDir, "etcd"), ClientAddr: cfg.EtcdListen, TLS: trust.etcd,
			Logger: log.With("component", "etcd"),
		}
		if peer != "" {
			if trust.secure {
				if trust.peer, err = trust.issueEtcdPeer(peer); err != nil {
					return err
				}
				if err := trust.serverToken(cfg, log); err != nil {
					return err
				}
			}
			ec.Name, ec.PeerURL, ec.PeerTLS = cfg.etcdName(), peer, trust.peer
			ec.InitialCluster, ec.Join = initialCluster, initialCluster != ""
			ec.TickMs, ec.ElectionMs = haTickMs, haElectionMs
		}
		e, err := store.StartEmbedded(ctx, ec)
		if err != nil {
			return err
		}
		defer e.Close()
		endpoints = localEndpoints(e.Endpoints())
		if peer != "" {
			if err := promoteSelf(ctx, e, cfg, trust, log.With("component", "etcd")); err != nil {
				return err
			}
			// Every member's client URL, so that this server works while
			// its own member is down and a quorum remains; kept current.
			endpoints, autoSync = startedEndpoints(e), true
			own, err := store.DialTLS(localEndpoints(e.Endpoints()), trust.etcdTLS())
			if err != nil {
				return err
			}
			defer own.Close()
			cfg.elected = moveRaftLeader(own, e.ID(), log.With("component", "etcd"))
			if own := localEndpoints(e.Endpoints()); !slices.Contains(endpoints, own[0]) {
				endpoints = append(endpoints, own...)
			}
		}
	}
	dial := store.DialTLS
	if autoSync {
		dial = store.DialMembers
	}
	cli, err := dial(endpoints, trust.etcdTLS())
	if err != nil {
		return err
	}
	keys, err := openKeyring(ctx, cli, cfg.keyFile(), log.With("component", "store"))
	if err != nil {
		cli.Close()
		return err
	}
	st := store.New(cli, store.WithKeyring(keys))
	defer st.Close()
	if trust.secure {
		if err := store.EnableAuth(ctx, cli); err != nil {
			return fmt.Errorf("%w (an external etcd must trust the cluster CA in %s: copy that directory from the first server)", err, trust.dir)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := cfg.registerNotify(reg); err != nil {
		return err
	}
	// One cache of the cluster state per replica: the leader, DNS, the API,
	// logs and the Service proxy read it instead of etcd.
	cache := store.NewCache(st, store.CacheConfig{Registerer: reg, Logger: log})

	dnsListen := []string{cfg.DNSListen}
	var agent *nodes.Agent
	if cfg.Agent {
		ac := cfg.AgentConf
		if ac.StateDir == "" {
			ac.StateDir = filepath.Join(cfg.DataDir, "node")
		}
		ac.Logger, ac.Registerer = log, reg
		if ac.ReservedPorts, err = cfg.reservedPorts(peer); err != nil { // reserved.go
			return err
		}
		ac.PodDNS = true // the DNS serves the pods at their nameserver, below
		agent, err = nodes.New(ac, st)
		if err != nil {
			return err
		}
		if agent.DNSServer() != "" {
			dnsListen = append(dnsListen, net.JoinHostPort(agent.DNSServer(), "53"))
		}
	}
	dnsSrv, err := dns.New(dns.Config{Listen: dnsListen, Domain: cfg.Domain, Logger: log, Registerer: reg}, cache)
	if err != nil {
		return err
	}

	joinHandler, err := trust.joinHandler(cfg, cli, reg, log)
	if err != nil {
		return err
	}
	apiLog := log.With("component", "api")
	tokens, cert, err := apiSecurity(cfg, trust.ca, apiLog)
	if err != nil {
		return err
	}
	var routes []api.Route
	var join http.Handler
	if joinHandler != nil {
		join = joinHandler
		routes = append(routes, api.Route{Pattern: "POST " + bjoin.ServerPath, Access: api.Public, Handler: http.HandlerFunc(joinHandler.ServeServer)})
	}
	health := newQuorumMonitor(cli, reg, log.With("component", "etcd-health"))
	apiSrv, err := api.New(api.Config{Join: join, Routes: routes, Etcd: health.Health,
		Listen: cfg.APIListen, WebhookListen: cfg.WebhookListen, Registry: reg, State: cache, Logger: apiLog,
		Webhook: api.WebhookConfig{SecretFile: cfg.WebhookSecretFile, Branch: cfg.Branch, Follows: canaryBranch(cache)},
		Tokens:  tokens, Certificate: cert,
	}, st, &backend{cfg: cfg, st: st, cache: cache, agent: agent, trust: trust})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	start("cache", cache.Run)
	start("etcd-health", health.Run)
	start("memory", func(ctx context.Context) error { return newReleaser(log, reg).run(ctx, cache) })
	start("api", apiSrv.Run)
	start("dns", dnsSrv.Run)
	if agent != nil {
		start("agent", agent.Run)
		start("podnet", func(ctx context.Context) error { return runPodNetwork(ctx, agent, st, reg, log) })
		if len(dnsListen) == 1 {
			// The pods' nameserver is the gateway of a subnet the leader
			// gives: served once the agent has it.
			start("dns-pods", func(ctx context.Context) error { return podDNS(ctx, agent, cfg.Domain, cache, log) })
		}
		if cfg.Proxy {
			pc := cfg.ProxyConf
			pc.Registerer, pc.Logger = reg, log
			runner := proxy.New(pc, cache)
			start("proxy", func(ctx context.Context) error {
				select {
				case <-agent.Registered():
					return runner.Run(ctx)
				case <-ctx.Done():
					return nil
				}
			})
		}
	}
	if cfg.Ingress != nil {
		if err := startIngress(*cfg.Ingress, cache, reg, log, start); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}
	m := newMetrics(reg)
	cfg.events = newServerEvents(st, reg, log) // events.go
	start("events", cfg.events.run)
	start("leader", func(ctx context.Context) error { return campaign(ctx, cfg, st, cache, m) })

	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startIngress starts the ingress proxy on the replica's cache.
func startIngress(c ingress.Config, cache *store.Cache, reg prometheus.Registerer, log *slog.Logger, start func(string, func(context.Context) error)) error {
	c.Registerer, c.Logger = reg, log
	srv, err := ingress.New(c)
	if err != nil {
		return err
	}
	start("ingress", func(ctx context.Context) error { return srv.Run(ctx, cache) })
	return nil
}

// campaign wins the election, leads until the leadership is lost, and
// campaigns again, until ctx ends.
func campaign(ctx context.Context, cfg Config, st *store.Store, cache *store.Cache, m *metrics) error {
	log := cfg.Logger.With("component", "leader")
	for ctx.Err() == nil {
		log.Info("campaigning", "id", cfg.ID)
		lead, err := st.Campaign(ctx, cfg.ID, store.DefaultSessionTTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Soon: a campaign that failed because its request went to a
			// member cut off by a partition is worth trying again at once.
			log.Warn("campaign failed; retrying", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		log.Info("elected leader", "id", cfg.ID)
		m.elections.Inc()
		lctx, endLead := context.WithCancel(ctx)
		var hooks sync.WaitGroup
		if cfg.elected != nil {
			hooks.Go(func() { cfg.elected(lctx) })
		}
		src, err := gitsource.New(gitsource.Config{
			URL: cfg.Repo, Branch: cfg.Branch, Dir: filepath.Join(cfg.DataDir, "git"),
			Poll: cfg.Poll, Auth: cfg.GitAuth, Logger: cfg.Logger,
			TrustedKeys: cfg.trustedKeys, Metrics: m.git,
		})
		if err != nil {
			endLead()
			hooks.Wait()
			lead.Resign(context.WithoutCancel(ctx))
			return err
		}
		l := &leader{cfg: cfg, st: st, cache: cache, lead: lead, src: src, log: log, m: m}
		err = l.run(ctx)
		endLead()
		hooks.Wait()
		if errors.Is(err, errLostLeadership) {
			m.leaderLost.Inc()
			log.Warn("lost leadership; campaigning again", "lease-deadline", lead.Deadline().Format(time.RFC3339Nano))
			// Stop renewing the old session at once (in the background:
			// revoking it waits for a quorum), so that this replica's old
			// election key is not what its next campaign waits behind.
			go lead.Close()
			continue
		}
		if rerr := lead.Resign(context.WithoutCancel(ctx)); rerr != nil {
			log.Warn("resign", "err", rerr)
		} else {
			log.Info("resigned leadership")
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
