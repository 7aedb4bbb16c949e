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
// echo every rule, then reads the answers one at a time: ~75,000 answers
// for a full rebuild at 1,000 Services x 10 endpoints, two recvmsg calls
// each, several times the kernel's own work (a full rebuild took 14 s of
// wall time on the loaded test machine; it takes about half a second now). transport.go therefore lets the library marshal
// the batch (into its test dialer) and sends it itself: one sendmsg, one
// acknowledgement (of the last message), every failing message still
// reported with the kernel's reason.
//
// # Cost
//
// BenchmarkSyncFull and BenchmarkSyncIncremental (1,000 Services x 10
// endpoints, 11,000 chains; `go test -run '^$' -bench Sync ./proxy`, as root)
// report wall, user and system time per Sync. Two kernel costs dominate and
// shaped the rules: the kernel binds an anonymous set to its rule by scanning
// the whole transaction (quadratic: it was 78% of a full rebuild, so the
// numgen maps are named, one per service port), and at every commit that
// adds a jump, a goto or a NAT rule it validates every chain reachable from
// the base chains, twice here (nat prerouting and output): an incremental
// Sync of one endpoint costs that walk of the whole table (5 to 17 ms of
// system time at 11,000 chains on the shared 2-core test machine, 0.4 ms at
// 1,100 chains), whatever the change;
// kube-proxy's nft pays the same walk plus a process start. A runner that
// coalesces changes pays it once per batch.
//
// # The model
//
// Build (pure, no I/O) computes the table's content as plain values
// (Ruleset: sets, maps with their elements, chains and their rules) from
// the service ports; golden files under testdata show it for typical
// cases. The applier (nft.go) turns those values into netlink messages.
// Table.Sync programs them:
//
//	ports ──normalize──▶ per-port fragments ──diff vs last──▶ one batch ──▶ kernel
//
// The first Sync after Open, and the first after a failed Sync, rebuilds the
// table from nothing in one transaction (add table, delete it, create
// everything), so whatever was there before, even another version's
// layout, is replaced atomically. Later Syncs compare each service port
// with the one last programmed (the Table keeps the normalized ports; a
// port's rules are a function of it) and change only what differs: new
// chains are created first, map elements that point at chains about to go
// are deleted and the chains that jump to them flushed, changed chains are
// flushed and rewritten, and removed chains deleted last, all in one
// transaction, so a packet sees either the old rules or the new ones.
// Deleting a chain in the transaction that removes the last map element
// pointing at it needs Linux 6.2 or later (kube-proxy defers it by a second
// on older kernels).
//
// # The rules (table ip <Table>, "bosun" by default)
//
//	map service-ips          ip daddr . meta l4proto . th dport : goto service-<port>
//	map service-nodeports    meta l4proto . th dport : goto service-<port>
//	map no-endpoint-services ip daddr . meta l4proto . th dport : goto reject-chain
//	map no-endpoint-nodeports meta l4proto . th dport : goto reject-chain
//
//	nat-prerouting, nat-output (nat, priority dstnat): jump services
//	services: ip daddr . meta l4proto . th dport vmap @service-ips
//	          fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//	filter-input, filter-forward, filter-output (filter, priority dstnat-10):
//	          ct state new jump endpoints-check (the same lookups in the no-endpoint maps)
//	reject-chain: TCP gets a reset, anything else ICMP port unreachable,
//	          so a client of a Service without endpoints fails at once
//	nat-postrouting (srcnat): jump masquerading: packets carrying the
//	          masquerade mark (0x4000) are masqueraded (fully random ports)
//
//	service-<HASH>-ns/name/proto/port:
//	          [node port]  ip daddr != ClusterIP meta mark set meta mark | 0x4000
//	          [affinity]   ip saddr @affinity-<ep> goto endpoint-<ep>   (each endpoint)
//	          numgen random mod N vmap @slots-<HASH>-ns/name/proto/port
//	map slots-<...>: numgen value (or range) : goto endpoint-<ep>
//	endpoint-<HASH>-ns/name/proto/port__ip/port:
//	          ip saddr <ep> meta mark set meta mark | 0x4000    (hairpin)
//	          [affinity] update @affinity-<ep> { ip saddr }
//	          meta l4proto <proto> dnat to <ep>:<port>
//
// Chain and set names carry the service port (and endpoint) they serve,
// prefixed with 8 base32 characters of its SHA-256, so they are
// deterministic, unique, and cut to nftables' 255-byte limit without
// colliding.
//
// # Weights
//
// Endpoints come in groups (tracks) with an optional weight. Without any
// weight every endpoint gets one slot of N: exactly equal shares, a plain
// map from 0..N-1 to the endpoint chains as kube-proxy has it. With
// weights, a group's share is its weight over the sum of the weights of
// the groups that have endpoints, split equally inside the group; the
// modulus is chosen so that every share is an exact integer number of
// slots (sum of weights times the lcm of the group sizes, reduced), and
// the slot map is an interval map, one range per endpoint, whatever the
// modulus. Only beyond MaxModulus (2^24) slots are shares rounded (largest
// remainder, resolution 2^-24). A group without endpoints drops out; if no
// group with a weight has endpoints, the endpoints that exist share equally.
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
// reply source is a removed UDP endpoint are deleted in cfg.NetNS
// (vishvananda/netlink). The first Sync after Open has nothing to compare
// with and flushes nothing.
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
//     is masqueraded by the endpoint chain, so its reply is routed too; its
//     packet leaves the bridge by the port it came in by, which needs the
//     port in hairpin mode (bosun's CNI bridge configuration sets
//     hairpinMode).
//   - Nothing else marks packets with the masquerade bit.
//
// Cleanup deletes the table; Close leaves it in place, so an agent restart
// keeps Services reachable until its first Sync rebuilds the table.
package proxy
