package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"bosun/api"
	"bosun/gitsource"
	"bosun/join"
	"bosun/manifest"
	"bosun/nodes"
	"bosun/podnet"
	"bosun/promquery"
	"bosun/server"
	"bosun/store"
)

func newServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server --repo URL|PATH",
		Short: "Run a control-plane replica (and, by default, this machine's node)",
		Long: `Server runs a control-plane replica: an embedded etcd (or --etcd-endpoints),
the API, the cluster DNS, leader election, and on the leader the Git source,
the reconciler and the scheduler. With --agent (on by default) it is also
this machine's node. Its first start generates the API's admin token and
saves it for the local CLI in ~/.config/bosun/token.`,
		Example: `  bosun server --repo https://github.com/me/deploy.git --branch main
  bosun server --repo git@github.com:me/deploy.git --ssh-key /etc/bosun/deploy_key
  bosun server --repo /srv/deploy --api-listen 0.0.0.0:7070 --etcd-listen 10.0.0.1:2379
  bosun server --repo URL --server https://10.0.0.1:7070 --token-file /etc/bosun/server-token   # a second server`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	var cfg server.Config
	var etcd, labels string
	var debug bool
	var pprofListen, promURL string
	fs.StringVar(&cfg.Repo, "repo", "", "Git repository: a path or a file://, http(s)://, git:// or ssh:// URL (required); a password goes in --git-password-file, not in the URL, which ps shows")
	fs.StringVar(&cfg.Branch, "branch", "main", "branch to follow")
	fs.StringVar(&cfg.Path, "path", "", "directory of the manifests inside the repository (default: the root)")
	fs.DurationVar(&cfg.Poll, "poll", 5*time.Second, "how often to fetch the repository")
	// Git transport (gitsource.Auth): secrets come from files, re-read at each fetch; ssh host keys are verified.
	fs.StringVar(&cfg.GitAuth.SSHKeyFile, "ssh-key", "", "unencrypted private key `FILE` for ssh repositories (a deploy key); default: the keys of the ssh-agent at $SSH_AUTH_SOCK")
	fs.Func("ssh-known-hosts", "known_hosts `FILE` the ssh server's host key must be in (repeatable, or comma-separated; default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, those that exist); add a server with ssh-keyscan", func(v string) error {
		cfg.GitAuth.SSHKnownHosts = append(cfg.GitAuth.SSHKnownHosts, splitList(v)...)
		return nil
	})
	fs.BoolVar(&cfg.GitAuth.InsecureIgnoreHostKey, "insecure-ignore-host-key", false, "accept any ssh host key: INSECURE, whoever sits between this machine and the Git server can make bosun run anything; warns at every start")
	fs.StringVar(&cfg.GitAuth.Username, "git-username", "", "user name for HTTPS basic auth, with --git-password-file")
	fs.StringVar(&cfg.GitAuth.PasswordFile, "git-password-file", "", "`FILE` holding the HTTPS password or access token; GitHub, GitLab and Bitbucket take their tokens this way (GitHub: your user name, or x-access-token for an app token; GitLab: any name, oauth2 for OAuth tokens)")
	fs.StringVar(&cfg.GitAuth.TokenFile, "git-token-file", "", "`FILE` holding a bearer token sent as 'Authorization: Bearer' (Azure DevOps Entra ID tokens, a proxy checking bearer tokens); not with --git-username: tokens a host takes as a password go in --git-password-file")
	fs.StringVar(&cfg.GitAuth.CAFile, "git-ca-file", "", "PEM `FILE` of CA certificates trusted for the HTTPS Git server besides the system's (a private CA)")
	fs.StringVar(&cfg.SOPSAgeKeyFile, "sops-age-key-file", "", "age identity `FILE` (as age-keygen writes it) that decrypts SOPS-encrypted manifests, in memory; empty: a revision with an encrypted manifest is rejected")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/bosun", "data directory (embedded etcd, clone, node state)")
	fs.StringVar(&etcd, "etcd-endpoints", "", "comma-separated etcd client URLs; empty starts an embedded etcd")
	fs.StringVar(&cfg.EtcdListen, "etcd-listen", "127.0.0.1:2379", "client address of the embedded etcd; beyond loopback it serves mutual TLS with the cluster CA, and machines join with the token the server prints")
	fs.StringVar(&cfg.JoinServer, "server", "", "join the cluster of the server at this API URL (https://10.0.0.1:7070) as another server: this server's etcd member joins the others' (with --token, the server token the first server printed); needed at the first start only")
	fs.StringVar(&cfg.JoinToken, "token", "", "the server token (the first server printed it; also in its <data-dir>/pki/server-token), with --server")
	serverTokenFile := fs.String("token-file", "", "file holding the server token, instead of --token")
	fs.StringVar(&cfg.EtcdPeerListen, "etcd-peer-listen", "", "address the embedded etcd member listens on for, and advertises to, the other servers' members (default: the --etcd-listen host, port 2380, when that is an address beyond loopback)")
	fs.StringVar(&cfg.EtcdName, "etcd-name", "", "the embedded etcd member's name (default: --id)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "let etcd be reached beyond loopback in plain text, without authentication (warns at every start)")
	fs.StringVar(&cfg.DNSListen, "dns-listen", "127.0.0.1:5353", "DNS listen address (UDP and TCP)")
	fs.StringVar(&cfg.APIListen, "api-listen", "127.0.0.1:7070", "HTTP API listen address")
	fs.StringVar(&cfg.Domain, "domain", "cluster.local", "cluster DNS domain")
	fs.StringVar(&cfg.ID, "id", "", "replica name in the leader election (default: hostname)")
	fs.BoolVar(&cfg.Agent, "agent", true, "also run this machine's node agent")
	fs.IntVar(&cfg.HistoryLimit, "history-limit", 100, "revisions kept in the history")
	fs.StringVar(&cfg.WebhookSecretFile, "webhook-secret-file", "", "file holding the shared secret of Git push webhooks (POST /api/v1/webhooks/git); empty: webhooks off")
	fs.StringVar(&cfg.WebhookListen, "webhook-listen", "", "also serve the webhook receiver, and nothing else, on this address (e.g. 0.0.0.0:7071), so the API can stay on loopback")
	// The API's security (issue 10): tokens and TLS.
	fs.StringVar(&cfg.TokensFile, "tokens-file", "", "API bearer tokens, one role:name:sha256:<hex> per line (bosun token create prints them), read again when it changes; empty: an admin token generated at the first start into the data directory, printed once and saved to ~/.config/bosun/token")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate (chain) the API serves HTTPS with, with --tls-key; empty: one issued by the cluster CA at the first start into the data directory and reused (the CLI pins it)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.EncryptionKeyFile, "encryption-key-file", "", "keys Secret data is encrypted with in etcd (default: <data-dir>/secrets.key, created on a cluster's first start; every server needs the same file)")
	fs.StringVar(&cfg.PodNetwork.ClusterCIDR, "cluster-cidr", "10.88.0.0/16", "the cluster's pod range: each node gets a subnet of it (--node-cidr-mask-size), kept in etcd until `bosun node delete`")
	fs.IntVar(&cfg.PodNetwork.MaskSize, "node-cidr-mask-size", 24, "prefix length of each node's pod subnet")
	fs.StringVar(&cfg.PodNetwork.Backend, "backend", "host-gw", "how pod traffic crosses nodes: host-gw (a route to each node's subnet via its address; nodes on one L2 segment) or vxlan (an overlay, VNI 1, UDP 8472); agents follow it")
	fs.DurationVar(&cfg.NodeGracePeriod, "node-grace-period", 30*time.Second, "how long a node may be gone before its pods are replaced elsewhere")
	fs.StringVar(&promURL, "prometheus-url", "", "Prometheus that canaries' metric gates (bosun.dev/canary-query) ask, e.g. http://127.0.0.1:9090; empty: a canary with a query fails its checks")
	fs.BoolVar(&cfg.VerifyCommits, "verify-commits", false, "run only commits signed by a key of --trusted-keys (main's head and canary branches' heads); others are rejected")
	fs.StringVar(&cfg.TrustedKeysDir, "trusted-keys", "", "directory of the keys --verify-commits trusts: OpenPGP public keys (*.asc, *.gpg, *.pub) and an SSH allowed_signers file; read at start")
	fs.StringVar(&cfg.NotifyConfigFile, "notify-config", "", "YAML `FILE` of notifications and commit statuses (GitHub, GitLab, Gitea/Forgejo statuses, JSON webhooks, Slack); validated at start; see examples/notifications")
	fs.BoolVar(&debug, "debug", false, "debug logging")
	fs.StringVar(&pprofListen, "pprof-listen", "", "serve Go's profiles (/debug/pprof/) on this loopback address, for performance work; empty: off")
	agentFlags(fs, &cfg.AgentConf, &labels)
	policyFlags(fs, &cfg.Policy)
	serviceFlags(fs, &cfg.Services)
	var px proxyFlags
	px.declare(fs)
	cmd.MarkFlagFilename("repo")
	cmd.MarkFlagDirname("data-dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runServer(cmd.Context(), cmd.ErrOrStderr(), &cfg, px, serverOpts{etcd: etcd, labels: labels, debug: debug,
			pprofListen: pprofListen, promURL: promURL, tokenFile: *serverTokenFile})
	}
	return cmd
}

// serverOpts are the server's flags that are not fields of server.Config.
type serverOpts struct {
	etcd, labels, pprofListen, promURL, tokenFile string
	debug                                         bool
}

func runServer(ctx context.Context, stderr io.Writer, cfgp *server.Config, px proxyFlags, o serverOpts) error {
	cfg := *cfgp
	var err error
	etcd, labels, debug, pprofListen, promURL, serverTokenFile := o.etcd, o.labels, o.debug, o.pprofListen, o.promURL, &o.tokenFile
	if err := px.validate(); err != nil {
		return err
	}
	if px.cleanup {
		return px.runCleanup(newLogger(os.Stderr, level(debug)))
	}
	cfg.Proxy, cfg.ProxyConf.Table = px.on, px.table
	if err := px.needsAgent(cfg.Agent); err != nil {
		return err
	}
	if cfg.Ingress, err = px.ingressConfig(); err != nil {
		return err
	}
	if cfg.Repo == "" {
		return &exitError{code: 2, err: fmt.Errorf("server: --repo is required")}
	}
	if cfg.AgentConf.Labels, err = parseLabels(labels); err != nil {
		return &exitError{code: 2, err: err}
	}
	// The same flags let validation accept and the node run them.
	cfg.AgentConf.AllowHostPath, cfg.AgentConf.AllowPrivileged, cfg.AgentConf.AllowHostNetwork = cfg.Policy.AllowHostPaths, cfg.Policy.AllowPrivileged, cfg.Policy.AllowHostNetwork
	cfg.EtcdEndpoints = splitList(etcd)
	// The server adds the listeners of its own config (server/reserved.go).
	if cfg.AgentConf.ReservedPorts, err = reservedPorts(nil, listenFlag{"--pprof-listen", nodes.HolderPprof, pprofListen}); err != nil {
		return err
	}
	if *serverTokenFile != "" {
		if cfg.JoinToken != "" {
			return &exitError{code: 2, err: fmt.Errorf("server: give --token or --token-file, not both")}
		}
		b, err := os.ReadFile(*serverTokenFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("server: --token-file: %w", err)}
		}
		cfg.JoinToken = strings.TrimSpace(string(b))
	}
	if cfg.JoinToken != "" && cfg.JoinServer == "" {
		return &exitError{code: 2, err: fmt.Errorf("server: --token goes with --server (the API URL of a server of the cluster to join)")}
	}
	if promURL != "" {
		prom, err := promquery.New(promURL, 0)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("server: --prometheus-url: %w", err)}
		}
		cfg.Measure = prom.Scalar
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return &exitError{code: 2, err: fmt.Errorf("server: --tls-cert and --tls-key go together")}
	}
	if cfg.TokensFile != "" {
		if _, err := api.LoadTokens(cfg.TokensFile, nil); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("server: --tokens-file: %w", err)}
		}
	}
	cfg.OnAdminToken = func(token string) { announceAdminToken(stderr, cfg.DataDir, token) }
	gitWarnings, err := gitsource.Check(gitsource.Config{URL: cfg.Repo, Branch: cfg.Branch, Dir: cfg.DataDir, Auth: cfg.GitAuth})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("server: --repo and its Git flags: %w", err)}
	}
	cfg.Logger = newLogger(os.Stderr, level(debug))
	cfg.Logger.Info("bosun server starting", "version", version, "repo", gitsource.RedactURL(cfg.Repo), "branch", cfg.Branch, "data-dir", cfg.DataDir)
	for _, w := range gitWarnings {
		cfg.Logger.Warn(w)
	}
	if err := servePprof(ctx, pprofListen, cfg.Logger); err != nil {
		return &exitError{code: 2, err: err}
	}
	return server.Run(ctx, cfg)
}

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run this machine's node agent (a node only, no server)",
		Long: `Agent runs this machine's node: it registers the node in the cluster, runs
the pods bound to it on containerd, probes them and reports their status,
programs the Service proxy (nftables) and the routes to other nodes' pods,
and answers its pods' DNS queries. It joins a cluster with the token a
server printed (--server, --token) at its first start.

--cleanup removes the Service proxy's table, the routes to other nodes'
pods, the VXLAN device and the masquerade table, and exits (bosun reset
does that and more). --simulate N runs N simulated nodes for scale tests.`,
		Example: `  bosun agent --server https://10.0.0.1:7070 --token-file /etc/bosun/join-token --node-name node-b
  bosun agent --etcd-endpoints http://127.0.0.1:2379 --node-name node-b --labels zone=a
  bosun agent --cleanup
  bosun agent --etcd-endpoints http://127.0.0.1:2379 --simulate 1000`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	var cfg nodes.Config
	var etcd, labels string
	var debug bool
	var jc join.Config
	var tokenFile string
	var insecure bool
	fs.StringVar(&etcd, "etcd-endpoints", "", "comma-separated etcd client URLs (default: those the server gave at join)")
	fs.StringVar(&jc.Server, "server", "", "a server's API URL to join the cluster through, e.g. https://10.0.0.1:7070")
	fs.StringVar(&jc.Token, "token", "", "the join token `bosun server` printed (or --token-file); needed at the first start; given at every start, it refreshes the node's certificate and the Secret keys")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the join token")
	fs.BoolVar(&insecure, "insecure", false, "reach etcd beyond loopback in plain text, without a node certificate (warns at every start)")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/bosun/node", "node state directory (pod logs, network namespaces, the node's certificate)")
	listen := fs.String("listen", "", "address serving this node's pod logs to bosun servers, and its metrics (/metrics), e.g. 0.0.0.0:10250; mutual TLS once joined (empty: off; `bosun logs` then works only for pods on a server's own node)")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "address servers reach this node at (default: detected)")
	fs.DurationVar(&cfg.CutOffStopAfter, "cut-off-stop-after", 0, "stop this node's pods once it has been cut off from etcd (its lease lost) this long; give the servers' --node-grace-period, so a long partition never runs the pods' replacements and the old copies at once (0: pods keep running while cut off)")
	fs.BoolVar(&debug, "debug", false, "debug logging")
	keyFile := fs.String("encryption-key-file", "", "the servers' key file of Secrets at rest (their <data-dir>/secrets.key), for pods that mount or read Secrets; empty: such pods fail to start")
	agentFlags(fs, &cfg, &labels)
	var sim simFlags
	sim.declare(fs)
	// What this node lets pods do: hostPath prefixes and privileged
	// containers, the same flags the server validates manifests with.
	var pol manifest.Policy
	policyFlags(fs, &pol)
	var px proxyFlags
	px.declare(fs)
	var nd nodeDNSFlags
	nd.declare(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAgentCmd(cmd.Context(), &cfg, agentOpts{etcd: etcd, labels: labels, debug: debug, jc: jc, tokenFile: tokenFile,
			insecure: insecure, listen: *listen, keyFile: *keyFile, sim: sim, pol: pol, px: px, nd: nd})
	}
	return cmd
}

// agentOpts are the agent's flags that are not fields of nodes.Config.
type agentOpts struct {
	etcd, labels, tokenFile, listen, keyFile string
	debug, insecure                          bool
	jc                                       join.Config
	sim                                      simFlags
	pol                                      manifest.Policy
	px                                       proxyFlags
	nd                                       nodeDNSFlags
}

func runAgentCmd(ctx context.Context, cfgp *nodes.Config, o agentOpts) error {
	cfg := *cfgp
	etcd, labels, debug, jc, tokenFile, insecure, listen, keyFile := o.etcd, o.labels, o.debug, o.jc, o.tokenFile, o.insecure, &o.listen, &o.keyFile
	sim, pol, px, nd := o.sim, o.pol, o.px, o.nd
	if err := px.validate(); err != nil {
		return err
	}
	if px.cleanup {
		log := newLogger(os.Stderr, level(debug))
		if err := podnet.CleanupNode(cfg.BridgeName, ""); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		if err := nodes.CleanupLocalnet(cfg.BridgeName); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		if err := nodes.CleanupHostPorts(cfg.BridgeName); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		log.Info("removed the routes to other nodes' pods, the VXLAN device, the masquerade table, the loopback guard and the pods' host port forwarding", "table", podnet.TableName(cfg.BridgeName), "guard", nodes.LocalnetTable(cfg.BridgeName))
		return px.runCleanup(log)
	}
	cfg.AllowHostPath, cfg.AllowPrivileged, cfg.AllowHostNetwork = pol.AllowHostPaths, pol.AllowPrivileged, pol.AllowHostNetwork
	var err error
	if cfg.Labels, err = parseLabels(labels); err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg.Logger = newLogger(os.Stderr, level(debug))
	if sim.nodes == 0 && (sim.metricsListen != "" || sim.set) {
		return &exitError{code: 2, err: fmt.Errorf("agent: --simulate-* and --metrics-listen go with --simulate N")}
	}
	var opts []store.Option
	if *keyFile != "" {
		keys, err := store.LoadKeyring(*keyFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("agent: --encryption-key-file: %w", err)}
		}
		opts = append(opts, store.WithKeyring(keys))
	}
	if tokenFile != "" {
		if jc.Token != "" {
			return &exitError{code: 2, err: fmt.Errorf("agent: give --token or --token-file, not both")}
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("agent: --token-file: %w", err)}
		}
		jc.Token = strings.TrimSpace(string(b))
	}
	jc.Node, jc.Dir, jc.Logger = cfg.NodeName, filepath.Join(cfg.StateDir, "pki"), cfg.Logger
	id, endpoints, err := agentIdentity(ctx, jc, splitList(etcd), *listen, insecure, cfg.Logger)
	if err != nil {
		return err
	}
	var etcdTLS *tls.Config
	if id != nil {
		etcdTLS = id.EtcdTLS()
		if *keyFile == "" && id.SecretKeysFile != "" {
			// The servers' keys, as the join gave them.
			keys, err := store.LoadKeyring(id.SecretKeysFile)
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			opts = append(opts, store.WithKeyring(keys))
		}
	}
	// Several members (three servers): the client pings each and follows
	// the member list, so a member cut off by a partition is found dead
	// in seconds and the node's lease and statuses go through the others.
	dialEtcd := store.DialTLS
	if len(endpoints) > 1 {
		dialEtcd = store.DialMembers
	}
	cli, err := dialEtcd(endpoints, etcdTLS)
	if err != nil {
		return err
	}
	st := store.New(cli, opts...)
	defer st.Close()
	if sim.nodes != 0 {
		return sim.run(ctx, cfg, st) // simulated nodes run no Service proxy
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var logs *http.Server
	agentListen := *listen
	if *listen != "" {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("agent: --listen: %w", err)
		}
		agentListen = l.Addr().String() // the port, if the system picked it
		_, port, _ := net.SplitHostPort(l.Addr().String())
		p, _ := strconv.Atoi(port)
		cfg.LogPort = int32(p)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.Handle("/", nodes.LogHandler(cfg.StateDir))
		logs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if id != nil {
			// Only the servers read logs: mutual TLS with the node's
			// certificate, and the servers' (CN root) required.
			l = tls.NewListener(l, id.LogServerTLS())
		}
		go logs.Serve(l)
		defer logs.Close()
	}
	cfg.Registerer = reg
	// The ports this agent listens on, reserved on its node; its cluster
	// DNS for the pods (--dns) at their nameserver too.
	if cfg.ReservedPorts, err = reservedPorts(nil, listenFlag{"--ingress-listen", nodes.HolderIngress, px.ingressListen},
		listenFlag{"--ingress-tls-listen", nodes.HolderIngressTLS, px.ingressTLSListen}, listenFlag{"--listen", nodes.HolderAgent, agentListen}); err != nil {
		return err
	}
	cfg.PodDNS = nd.on
	agent, err := nodes.New(cfg, st)
	if err != nil {
		return err
	}
	nd.domain = cfg.ClusterDomain
	return runAgent(ctx, agent, st, px, nd, reg, cfg.Logger)
}

// agentFlags declares the node agent's flags, shared by server and agent.
func agentFlags(fs *flagSet, cfg *nodes.Config, labels *string) {
	host, _ := os.Hostname()
	fs.StringVar(&cfg.NodeName, "node-name", strings.ToLower(host), "this node's name (default: the hostname, lowercased as Kubernetes does)")
	fs.StringVar(labels, "labels", "", "node labels, k=v,k=v")
	fs.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&cfg.PodCIDR, "pod-cidr", "", "this node's pod subnet (bridge with host-local IPAM); empty: the leader gives one from --cluster-cidr. One that overlaps another node's is refused")
	fs.StringVar(&cfg.BridgeName, "bridge", "bosun0", "Linux bridge of the pod network")
	fs.StringVar(&cfg.NetnsDir, "netns-dir", "/run/netns", "where pod network namespaces are mounted")
	fs.Func("insecure-registries", "registries (host:port, comma-separated) pulled from over plain HTTP; localhost always is", func(v string) error {
		cfg.InsecureRegistries = append(cfg.InsecureRegistries, splitList(v)...)
		return nil
	})
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", "/etc/resolv.conf", "the node's resolv.conf, given to pods with dnsPolicy Default")
	fs.DurationVar(&cfg.RestartBackoff, "restart-backoff", 10*time.Second, "first delay before restarting a crashed container")
	fs.DurationVar(&cfg.MaxRestartBackoff, "max-restart-backoff", 5*time.Minute, "longest delay before restarting a crashed container")
	fs.IntVar(&cfg.MaxPods, "max-pods", 110, "how many pods this node runs at most")
	fs.Func("system-reserved", "cpu and memory kept back for the system, e.g. cpu=500m,memory=512Mi: the node offers its capacity less this", func(v string) error {
		r, err := parseResources(v)
		cfg.SystemReserved = r
		return err
	})
	fs.Func("taints", "node taints, key=value:Effect or key:Effect, comma-separated; Effect is NoSchedule, PreferNoSchedule or NoExecute", func(v string) error {
		t, err := parseTaints(v)
		cfg.Taints = append(cfg.Taints, t...)
		return err
	})
	fs.Func("volume-capacity", "bytes of local volumes (PersistentVolumeClaims) this node takes, e.g. 10Gi; 0: no limit (default: the size of the data dir's filesystem)", func(v string) error {
		n, err := parseVolumeCapacity(v)
		cfg.VolumeCapacity = n
		return err
	})
}

// parseTaints reads taints as kubelet's --register-with-taints takes them:
// key=value:Effect or key:Effect, comma-separated.
func parseTaints(s string) ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, item := range splitList(s) {
		kv, effect, ok := strings.Cut(item, ":")
		if !ok || kv == "" {
			return nil, fmt.Errorf("%q is not key=value:Effect or key:Effect", item)
		}
		k, v, _ := strings.Cut(kv, "=")
		t := corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("%q: effect %q: must be NoSchedule, PreferNoSchedule or NoExecute", item, effect)
		}
		out = append(out, t)
	}
	return out, nil
}

// parseResources reads name=quantity pairs, comma-separated.
func parseResources(s string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for _, item := range splitList(s) {
		name, value, ok := strings.Cut(item, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not name=quantity", item)
		}
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		out[corev1.ResourceName(name)] = q
	}
	return out, nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func level(debug bool) slog.Level {
	if debug {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// servePprof serves Go's runtime profiles on addr until ctx ends. Profiles
// show code paths and object contents, so only a loopback address is
// accepted.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof-listen %q: must be a loopback address and port, like 127.0.0.1:6060", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(l)
	log.Info("serving profiles", "addr", "http://"+addr+"/debug/pprof/")
	return nil
}

// agentIdentity decides how an agent reaches etcd: as a joined node (its
// certificate from the state directory, joining first with --server and
// --token), or, for etcd on loopback or with --insecure, in plain text.
func agentIdentity(ctx context.Context, jc join.Config, endpoints []string, listen string, insecure bool, log *slog.Logger) (*join.Identity, []string, error) {
	_, statErr := os.Stat(filepath.Join(jc.Dir, "node.crt"))
	if jc.Server != "" || jc.Token != "" || statErr == nil {
		if insecure {
			return nil, nil, &exitError{code: 2, err: errors.New("agent: --insecure and joining (--server, --token, or a joined state directory) exclude each other")}
		}
		id, err := join.Ensure(ctx, jc)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		if len(endpoints) == 0 {
			endpoints = id.Endpoints
		}
		return id, endpoints, nil
	}
	if len(endpoints) == 0 {
		return nil, nil, &exitError{code: 2, err: errors.New("agent: join a cluster with --server URL --token TOKEN (as `bosun server` printed them), or give --etcd-endpoints of a local etcd")}
	}
	var beyond []string
	for _, e := range endpoints {
		u, err := url.Parse(e)
		host := e
		if err == nil && u.Host != "" {
			host = u.Host
		}
		if !loopbackAddr(host) {
			beyond = append(beyond, e)
		}
	}
	if listen != "" && !loopbackAddr(listen) {
		beyond = append(beyond, "--listen "+listen)
	}
	switch {
	case len(beyond) > 0 && !insecure:
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("agent: %s is beyond loopback: join the cluster with --server URL --token TOKEN for mutual TLS, or pass --insecure for plain text", strings.Join(beyond, ", "))}
	case len(beyond) > 0:
		log.Warn("INSECURE: reaching etcd and serving logs in plain text without authentication beyond loopback; join with --server and --token instead", "addresses", strings.Join(beyond, ", "))
	}
	return nil, endpoints, nil
}

// loopbackAddr says whether host[:port] is loopback or localhost.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
