// Package proxy gives Services their virtual IPs: it programs the kernel's
// nftables with the rules that send a connection to ClusterIP:port (or to a
// node port on one of the node's own addresses) to one of the Service's
// ready endpoints, as kube-proxy's nftables mode does. Every agent runs it
// for its node; the runner (runner.go) feeds it ServicePorts built from the
// store, and this file's half, the rule engine, keeps one table in step.
//
// # Why google/nftables
//
// The rules are written with github.com/google/nftables: it speaks
// netlink to the kernel directly, and a whole change goes as one batch that
// the kernel applies as one atomic transaction. The alternative,
// sigs.k8s.io/knftables (kube-proxy's), writes rule text and runs the nft
// binary for every change: a process start and a parse per sync, and rule
// text built from strings. Here there is no nft process and no rule text at
// all: every expression is a Go value the library marshals. nft is only
// used by tests, to read the kernel's state back.
//
// The library's Flush asks the kernel to acknowledge every message and to
// echo every rule, then reads the answers one at a time: for a full
// rebuild of 1,000 Services x 10 endpoints tens of thousands of answers,
// two recvmsg calls each, several times the kernel's own work (through it,
// a full rebuild of the first layout took 14 s of wall time on the loaded
// test machine). transport.go therefore lets the library marshal the batch
// (into its test dialer) and sends it itself: one sendmsg, one
// acknowledgement (of the last message), every failing message still
// reported with the kernel's reason.
//
// # The rules (table ip <Table>, "bosun" by default)
//
//	map service-ips           ip daddr . meta l4proto . th dport : goto service-<port>
//	map service-nodeports     meta l4proto . th dport : goto service-<port>
//	set all-service-ips       ip daddr . meta l4proto . th dport  (every service port)
//	set all-service-nodeports meta l4proto . th dport            (every node port)
//	set hairpin               ip saddr . ip daddr: ep . ep for every endpoint address
//
//	nat-prerouting, nat-output (nat, priority dstnat): jump services
//	services: ip daddr . meta l4proto . th dport vmap @service-ips
//	          fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//	filter-input, filter-forward, filter-output (filter, priority dstnat+10):
//	          ct state new ct status ! dnat jump not-dnated
//	not-dnated: ip daddr . meta l4proto . th dport @all-service-ips goto reject-chain
//	          fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @all-service-nodeports goto reject-chain
//	reject-chain: TCP gets a reset, anything else ICMP port unreachable,
//	          so a client of a Service without endpoints fails at once
//	nat-postrouting (srcnat): jump masquerading:
//	          ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random
//	          packets carrying the masquerade mark (0x4000): mark cleared, masquerade fully-random
//
//	service-<HASH>-ns/name/proto/port:
//	          [node port] ip daddr != ClusterIP meta mark set meta mark | 0x4000
//	          meta l4proto <proto> dnat ip to numgen random mod 720720000 map @backends-<HASH>-ns/name/proto/port
//	map backends-<...>: integer (numgen, interval) : ipv4_addr . inet_service
//	          { 0-240239999 : 10.244.0.2 . 8080, 240240000-480479999 : 10.244.0.3 . 8080, ... }
//
// A port without endpoints keeps its chain and an empty backends map: the
// DNAT rule finds no backend and the connection leaves the nat chain as it
// came; the filter chains, which run after it, refuse a new connection to
// a service port that was not DNATed (see Refusing below).
//
// A port with sessionAffinity: ClientIP keeps kube-proxy's shape, a chain
// per endpoint:
//
//	service-<...>: [node port]
//	          ip saddr @affinity-<ep> goto endpoint-<ep>   (each endpoint)
//	          numgen random mod 720720000 vmap @slots-<...>
//	map slots-<...>: integer (numgen, interval) : goto endpoint-<ep>
//	endpoint-<HASH>-ns/name/proto/port__ip/port:
//	          update @affinity-<ep> { ip saddr }
//	          meta l4proto <proto> dnat to <ep>:<port>
//
// Chain and set names carry the service port (and endpoint) they serve,
// prefixed with 8 base32 characters of its SHA-256, so they are
// deterministic, unique, and cut to nftables' 255-byte limit without
// colliding. TestSync_encodingMatchesNft checks that the kernel holds the
// same bytecode for bosun's table as for the table nft writes from its
// listing.
//
// # Why endpoints are data, not chains
//
// kube-proxy gives every endpoint a chain (hairpin mark, affinity, DNAT)
// and every service port `numgen random mod N vmap` over them, so an
// endpoint change adds or deletes a chain, rewrites the service port's
// rule (N changes) and changes verdict elements. The kernel validates a
// table at the commit of a batch that set its validate_state to NEED
// (net/netfilter/nf_tables_api.c): nf_tables_newrule does when an
// expression of the new rule has a validate operation (a jump or goto, nat,
// masquerade, reject, a lookup in a verdict map...), nft_add_set_elem when
// a new element's data is a jump or goto; nf_tables_validate then walks
// every chain reachable from each base chain, twice here (nat prerouting
// and nat output reach the same chains). At 1,000 Services x 10 endpoints
// that was 11,000 chains and about two thirds of an incremental Sync, whatever
// changed.
//
// Here an endpoint is an element of its port's backends map, whose data is
// an address and a port, not a verdict; the hairpin set has no data at
// all; the modulus is one constant (see Weights), so the rule that draws
// never changes. An endpoint change, including a port's
// last endpoint leaving and its first one coming back, is element
// deletions and additions in those maps and sets: no chain, no rule, no
// verdict, no validation (TestUpdate_endpointChangesAreMapElementsOnly
// pins it). A pod reaching its own Service is recognized after DNAT, in
// nat postrouting, by the set of ep . ep pairs, instead of a mark in a
// chain per endpoint; an address stays in it while any port sends to it
// (the Table counts them). A Service coming or going, or a node port or
// affinity change, still adds or removes a chain and a verdict and pays
// the validation, over one chain per service port (1,000 instead of
// 11,000). ClientIP affinity keeps the chain per endpoint: an endpoint's
// affinity set must go with it, or its clients would stick to a removed
// endpoint until their timeout.
//
// # Refusing connections to ports without endpoints
//
// The filter chains refuse a new connection whose destination is a
// service port (a ClusterIP . protocol . port, or a node port on a local
// address) and that the nat chain did not DNAT (ct status ! dnat): it had
// no endpoint in the rules the nat chain saw. The sets they look up hold
// every service port, with endpoints or not, and change only when a port
// comes or goes; endpoints change only the backends maps. So one
// generation of rules decides a connection's fate, the one its first
// packet met in the nat chain: DNATed to an endpoint of that generation,
// or refused, whatever generation the filter chain sees.
//
// kube-proxy (and this package's previous layout) instead puts the ports
// without endpoints in a set that filter chains at priority dstnat-10 look
// up, before the nat chain. Each base chain reads the generation of rules
// current when the packet reaches it, and a commit can fall between the
// two. In output, the filter chain ran first: it saw the port with
// endpoints (pass), the nat chain then saw it without (no DNAT), and the
// SYN left by the default route towards the ClusterIP, to be refused only
// on its retransmission a second later, or not at all if the port had
// endpoints again by then (conntrack kept the flow, without DNAT, and the
// retransmissions followed the first SYN). From a pod (prerouting, then
// forward) the same happened the other way round, when the port got its
// first endpoint back. The runner's benchmark lost 4 to 9 SYNs of 300 such
// changes. TestTraffic_lastEndpointFlapsRefusedOrServedAtOnce (clients
// connecting in tight loops from the node, from a pod and to a node port
// while the only endpoint leaves and comes back 500 times) failed 6 runs
// of 6 on that layout, from the node and from the pod, and passes on this
// one, every connect answered at its first SYN.
//
// The filter chains run at priority dstnat+10, after the nat chain in
// output; input and forward come after prerouting anyway. A connection
// DNATed to the node itself (an endpoint on the host's network whose port
// is the node port's own number) is not refused: it was DNATed. A packet
// the nat chain did not DNAT is dropped by the reject before conntrack
// confirms its flow, so while a port exists no new flow to it is kept
// without DNAT; only the commit that creates or removes a port can fall
// between the two chains (a connection to a port just created is refused,
// one to a port just removed goes by the routes, as it will after). A
// packet to a ClusterIP at a port the Service does not have is not
// refused: it follows the node's routes, as before.
//
// # Cost
//
// BenchmarkSyncFull, BenchmarkSyncIncremental and BenchmarkSyncOtherChanges
// (`go test -run '^$' -bench Sync -benchtime 20x -count 5 ./proxy`, as
// root) report wall, user and system time per Sync; BenchmarkRebuildScale
// the full rebuild at other sizes. Medians on the shared 2-core test
// machine at a load average of 9 to 13 (wall time up to twice the CPU
// time), against kube-proxy's layout (commit 209569d) in the same run:
//
//	1,000 Services x 10 endpoints      wall      CPU (user+sys)   kube-proxy's layout
//	full rebuild                       219 ms    123 ms           694 ms (447 ms CPU)
//	one endpoint changed               0.47 ms   0.20 ms          33 ms (19 ms CPU)
//	  at 3,000 / 10,000 Services       0.57 / 2.5 ms  0.7 / 2.2 ms    115 ms / -
//	a port's last endpoint goes, back  0.38 ms   0.17 ms
//	a Service added or removed         2.8 ms    2.2 ms           (validated: a chain, a verdict)
//	an endpoint of a ClientIP Service  1.8 ms    1.4 ms           (validated)
//
// At a load average of 5 the full rebuild takes 100 to 130 ms. What is
// left grows with the table but stays small: at every commit the kernel
// walks every chain of the table to publish the next generation of rules
// (nf_tables_commit), and Sync compares every port with the last one
// (10,000 Services: 0.7 ms of system time, 1.6 ms of user time). A full
// rebuild has a quadratic part in the kernel: it finds a set by name by
// walking the table's list of sets, to refuse a second set of the same
// name and then for the rule and the element message that name it, so
// the 1,000 backends maps cost about 40 ms of system time, and a rebuild
// of 2,000 Services takes about 0.5 s, of 4,000 about 2.4 s
// (BenchmarkRebuildScale). One shared interval map, each port drawing
// from its own range of it (numgen ... offset), would make that linear at
// the price of a coarser split and a cap on the number of ports; not done.
//
// Refusing after the nat chain (every service port in the filter chains'
// sets, ct status ! dnat) changed none of these beyond the noise: medians
// of eight interleaved runs of 100 Syncs each against the layout before
// it, at a load of 2 to 5, one endpoint changed 0.24 -> 0.21 ms (3,000
// Services: 0.36 -> 0.37 ms), a port's last endpoint goes and back 0.24 ->
// 0.20 ms, and of five runs of 20 the full rebuild 102.8 -> 102.7 ms
// (benchstat: no difference at p < 0.05; the full rebuild allocates 3 %
// more for the 1,000 elements of all-service-ips).
//
// # The model
//
// Build (pure, no I/O) computes the table's content as plain values
// (Ruleset: sets, maps with their elements, chains and their rules) from
// the service ports; golden files under testdata show it for typical
// cases. The applier (nft.go) turns those values into netlink messages.
// Table.Sync programs them:
//
//	ports ──normalize──▶ changed ports ──their fragments, old vs new──▶ one batch ──▶ kernel
//
// The first Sync after Open, and the first after a failed Sync, rebuilds the
// table from nothing in one transaction (add table, delete it, create
// everything), so whatever was there before, even another version's
// layout, is replaced atomically. Later Syncs find the service ports that
// differ from the ones last programmed (the Table keeps the normalized
// ports; a port's rules are a function of it) and change only their
// part: new chains are created first, map elements that point at chains
// about to go are deleted and the chains that jump to them flushed,
// changed chains are flushed and rewritten, numgen maps whose slots
// changed are flushed and filled again, and removed chains deleted last,
// all in one transaction, so a packet sees either the old rules or the new
// ones. When the caller lists the same ports in the same order as last
// time (the runner does) and none changed its address or ports, each is
// compared in place with the last one and only the changed ones are
// validated and copied; otherwise the whole list is normalized (validated,
// sorted, indexed by key). Deleting a chain in the transaction that
// removes the last map element pointing at it needs Linux 6.2 or later
// (kube-proxy defers it by a second on older kernels).
//
// # Weights
//
// Endpoints come in groups (tracks) with an optional weight. Without any
// weight every endpoint gets an equal share. With weights, a group's
// share is its weight over the sum of the weights of the groups that have
// endpoints, split equally inside the group; a group without endpoints
// drops out, and if no group with a weight has endpoints, the endpoints
// that exist share equally. Every port draws numgen random mod Modulus
// (720,720,000 = lcm(1..16) x 1,000) and each endpoint gets a range of
// slots: exactly its share for equal shares over any number of endpoints
// that divides the modulus (every count up to 16, and 18, 20, 24, ...)
// and for weights that sum to a divisor of 1,000 (percentages, per mille)
// over groups of up to 16 endpoints; otherwise shares are apportioned by
// largest remainder, each within 1/Modulus (1.4e-9) of exact, and every
// endpoint keeps at least one slot. The kernel maps its 32-bit random
// number onto the modulus by multiplication (reciprocal_scale), which
// adds an error below 2^-32 to any share.
//
// # Session affinity
//
// sessionAffinity: ClientIP gives every endpoint a dynamic set of client
// addresses with the Service's timeout: the endpoint chain refreshes the
// client's entry on every new connection, and the service chain sends a
// client found in an endpoint's set straight to that endpoint.
//
// # UDP and conntrack
//
// Conntrack keeps a UDP flow's DNAT for as long as packets keep coming, so
// a client that sends from one port forever would keep talking to an
// endpoint that is gone. After each Sync, the conntrack entries whose
// original destination is the ClusterIP:port (or the node port) and whose
// reply source is a removed UDP endpoint of a changed or removed port are
// deleted in cfg.NetNS (vishvananda/netlink). The first Sync after Open
// has nothing to compare with and flushes nothing.
//
// # What the rules assume of the node
//
//   - IPv4 forwarding is on and the node has a route for the service CIDR
//     (a default route does): a ClusterIP is no local address, so a packet
//     to it is routed (prerouting DNAT then changes its destination).
//   - Pods on a Linux bridge: a reply from an endpoint to a client pod on
//     the same bridge is bridged, not routed, and must still pass conntrack
//     to be un-DNATed; that needs br_netfilter with
//     net.bridge.bridge-nf-call-iptables=1 (kube-proxy needs the same). The
//     agent's runner turns it on. A pod reaching its own Service (hairpin)
//     is masqueraded (the hairpin set), so its reply is routed too; its
//     packet leaves the bridge by the port it came in by, which needs the
//     port in hairpin mode (bosun's CNI bridge configuration sets
//     hairpinMode).
//   - Nothing else marks packets with the masquerade bit.
//
// Cleanup deletes the table; Close leaves it in place, so an agent restart
// keeps Services reachable until its first Sync rebuilds the table.
//
// # The runner (every agent)
//
//	store.Cache --Changes(services, pods, podstatus)--> Runner.Run
//	    Snapshot -> PortsBuilder.Update -> []ServicePort -> Table.Sync (one transaction)
//
// New(RunConfig, cache) and Run(ctx) keep a node's table equal to the
// store. Ports (ports.go) is the definition of what the rules serve: for
// every Service with a ClusterIP (not "", not None), one ServicePort per
// TCP or UDP port; its endpoints are the pods kube.Endpoint calls ready,
// at the port kube.EndpointPort resolves (a pod without a named target
// port is left out of that port only), grouped by the pod label
// bosun.dev/track, each group weighted by its pods' annotation
// bosun.dev/weight (absent: 0; when the pods of a group disagree, the
// smallest weight counts, so a group never gets more than all its pods ask
// for); node ports for type NodePort; ClientIP affinity with its timeout
// (10800 s by default). Ports that would collide in the table (a port
// name twice, a VIP and port or a node port of two Services) are left out
// and logged, the first by namespace/name kept, so that one mistake holds
// no other Service up. A PortsBuilder computes the same thing
// incrementally: it recomputes only the Services whose inputs changed
// (the Service, or a pod it selects or selected, found through a
// namespace/label index; pods are compared by pointer, the cache's being
// immutable) and shares every other Service's ports with its previous
// result; a property test checks it equals Ports after every step of
// random changes. A change the rules do not see (a restart count) syncs
// nothing.
//
// Run waits for the cache's first list, then syncs on every change: the
// first change after a quiet time at once, later ones at most once per
// MinSyncInterval (10 ms), so a burst costs a sync per interval, not per
// write (the cache's notifications coalesce too). The first sync rebuilds
// the table; a failed sync (or Open) is retried after 100 ms, doubling up
// to 30 s, and the retry rebuilds. Run stops on ctx and leaves the table:
// Services keep working while the agent restarts, and the next start
// rebuilds the same table. At start it sets
// net.bridge.bridge-nf-call-iptables=1 in its network namespace (loading
// br_netfilter when the sysctl is missing; a warning when it cannot).
// Metrics: bosun_proxy_sync_seconds{kind=full|incremental},
// bosun_proxy_syncs_total{result=ok|error}, bosun_proxy_service_ports,
// bosun_proxy_endpoints, bosun_proxy_last_sync_timestamp_seconds. bosun
// server runs the runner beside its embedded agent on the replica's cache;
// bosun agent on a cache of its own holding only services, pods and pod
// statuses (CacheConfig); --proxy=false runs none, --proxy-table names the
// table, --cleanup removes it and exits.
//
// Measured (go test -run '^$' -bench Runner_readyToReachable -benchtime
// 300x ./proxy, as root, on the 2-core test machine, load 1 to 3; the
// figures of record are in BENCHMARKS.md): from the write of a pod's
// Ready status to the store to the first connection through its VIP that
// reaches it, p50 3.1 ms and p99 7.0 ms with one Service (the etcd write
// itself is p50 2.3 ms of it), p50 4.3 ms and p99 10.6 ms among 1,000
// Services x 10 endpoints. NotReady to refused takes as long, and no
// connect loses its SYN on the way (slow-connects and hung-connects are
// 0); the previous layout, whose reject could see another generation of
// rules than the DNAT (see Refusing), lost 4 to 9 SYNs in 300. One pod
// changing among 1,000 Services x 10 pods costs the PortsBuilder about
// 0.1 ms (BenchmarkPortsBuilder_onePodReady, most of it copying the 1,000
// ports into a new result; Ports from nothing: 20 ms). An agent's memory
// for 1,000 Services x 10 endpoints: 44.6 MB of Go heap for its cache of
// Services, pods and statuses, 3.9 MB for the PortsBuilder and the Table.
package proxy
