// Package dns is bosun's cluster DNS server: it answers names of the cluster
// domain from the store and forwards every other name to upstream resolvers.
//
// # Names
//
// With the domain cluster.local (Config.Domain), a Service <svc> in namespace
// <ns> answers as Kubernetes' DNS specification says. A Service with a
// virtual IP (spec.clusterIP an address; spec.clusterIPs when set):
//
//	<svc>.<ns>.svc.cluster.local                  A/AAAA  the virtual IP(s), whatever the pods
//	_<port>._<proto>.<svc>.<ns>.svc.cluster.local SRV     one per named port: the service
//	                                                      port, target <svc>.<ns>.svc.cluster.local
//
// A headless Service (spec.clusterIP None):
//
//	<svc>.<ns>.svc.cluster.local                  A/AAAA  the ready endpoints (one track's when
//	                                                      weighted, see below)
//	<ip-with-dashes>.<svc>.<ns>.svc.cluster.local A/AAAA  each ready endpoint
//	<hostname>.<svc>.<ns>.svc.cluster.local       A/AAAA  each ready endpoint whose pod sets
//	                                                      spec.hostname and spec.subdomain <svc>
//	_<port>._<proto>.<svc>.<ns>.svc.cluster.local SRV     one per ready endpoint and named port:
//	                                                      the endpoint port, target the
//	                                                      endpoint's hostname name, else its
//	                                                      dashed name
//
// The leader gives every Service that is not headless its address before
// it stores it (package ipalloc). A Service stored without one all the same
// (spec.clusterIP empty: written by a bosun before virtual IPs, until the
// leader restores its revision with addresses) answers as a headless
// Service, as every Service did before virtual IPs, so that clients keep
// working in between; once it has its address, its name answers the
// address alone. A clusterIP that is not an address is left out (Index.Skipped, the
// server logs it) and the Service's name has no address records.
//
// Endpoints are what kube.Endpoint says: the pods of the Service's namespace
// that its (non-empty) selector matches, that are Ready (condition
// Ready=True; with spec.publishNotReadyAddresses, any that has not
// finished), have a PodIP and no deletion timestamp; addresses are sorted.
// A pod's hostname name follows kube.EndpointHostname (Kubernetes' rule:
// spec.hostname, when spec.subdomain is the Service's exact name); pods
// sharing a hostname share the name. Unlike CoreDNS, which names such an
// endpoint by its hostname only, the dashed name stays too: a client that
// knows an address can always name it. A Service with a virtual IP has no
// per-pod names, and a hostname whose subdomain names it gives none.
// A name that exists without records of the asked type, such as a Service
// without ready endpoints or AAAA of an IPv4 Service, is NODATA (NOERROR,
// no answer, the SOA in the authority section); an unknown name of the
// domain is NXDOMAIN with the SOA. Names are case-insensitive. Names outside
// the domain are forwarded to the upstreams in order, keeping the query id;
// SERVFAIL when none answers. Reverse names (PTR) are not served.
//
// # Weighted answers (canary by DNS)
//
// The ready endpoints of a headless Service fall into groups as the Service
// proxy groups them (kube.EndpointGroup): by the pod label bosun.dev/track
// (stable, canary; absent: one group ""), a group weighing the smallest
// annotation bosun.dev/weight of its pods (absent, or not a non-negative
// integer: 0). When the endpoints of an address family fall into more than
// one group and one group weighs more than 0, each A (or AAAA) query for
// the Service's name is answered with the records of ONE group, picked at
// random for that query in proportion to the weights: a client that
// connects to any address of the answer reaches the canary with the
// probability of its share. A group of weight 0 is never picked while
// another weighs more; a group without a ready endpoint (of that family)
// is no candidate. The records of a group keep the order of the unweighted
// answer (by address), and carry the TTL WeightedTTL (1 s, whatever
// Config.TTL) so that caching resolvers ask again soon. One group, or
// every weight 0, answers every endpoint with the usual TTL, as before
// weights. The SRV answers of such a Service stay complete, and the weight
// of each SRV record is its group's share of 10,000 divided among the
// group's endpoints of that port (0 for a group of weight 0), so that a
// client weighting by RFC 2782 reaches each group in proportion. Per-pod
// names (dashed, hostname) and ANY are unchanged. A name shared by
// Services whose names differ only in case is never weighted (its records
// are no one Service's groups). The Index holds each group's records
// beside the full list; Answer draws one number from math/rand/v2 (the
// runtime's per-thread generator, no lock) and walks the two or three
// groups: no allocation more than an unweighted answer.
//
// DNS weights are approximate; the virtual IP's are exact. The proxy
// picks a group for each new connection, in the kernel (nftables numgen),
// whatever the client does. DNS picks per query, and what a client does
// with the answer is its own: it caches the answer for the TTL (some
// runtimes and resolvers longer, ignoring it), so all its connections in
// that time go to one group; a resolver between the client and bosun
// (nscd, systemd-resolved, a node-local cache) serves one answer to many
// clients for its TTL, and may merge or reorder answers; a long-lived
// connection, or a pool of them, keeps the group it first picked for as
// long as it lives. Over many clients and queries the shares converge on
// the weights (10,000 queries at 90/10 name the canary in 10 % +- 2 %,
// TestWeighted_canaryShareFollowsWeights; 1,000 queries on the real stack
// in 10 % +- 3 %, e2e/dnsweight_test.go); for one client
// over a short time they need not. Give a Service a virtual IP when the
// share must hold per connection.
//
// # Structure
//
//	store.Cache --Changes--> Run: Snapshot -> Builder.Update -> atomic swap
//	                                                   |
//	query --UDP batch loop / TCP (miekg/dns)--> Index.Answer (map lookup) -> EDNS0, truncate -> reply
//	      \--outside the domain--> forward to upstreams
//
// BuildIndex is a pure function of (domain, services, pods): every answer is
// precomputed per lowercased owner name, and Index.Answer is a map lookup plus
// a copy of slice headers. The Server keeps the Index in an atomic.Pointer, so
// queries never wait for an update. Updates follow the replica's
// store.Cache (its Changes on services/, pods/ and podstatus/, and its
// Snapshot, which is memory, not an etcd read). A Builder, owned by Run,
// turns each snapshot into the next Index incrementally: it compares the
// pods with the previous snapshot's (by pointer, the cache's pods being
// immutable, then by the fields DNS reads) and the Services with the
// previous ones, and recomputes only the names of the Services whose spec
// changed or that select, or selected, a pod that changed; every other
// name and its records are shared with the previous Index. A Service with
// a virtual IP answers the same whatever its pods, so pods never make the
// Builder recompute it: once Services have virtual IPs, a rollout costs
// DNS the comparison of pods and nothing more. Names are spread over 256
// maps by Service (copy on write), so an update copies the maps it writes,
// not the whole domain. The first load and a retry after a failed read
// compute everything from nothing; the resync every 30 s (free when the
// snapshot's revision did not move) is an update like any other, which
// catches a missed notification without holding answers up for a full
// rebuild. The answers are those of BuildIndex of the same input, which a
// property test checks after every step of random changes (pods' labels,
// tracks, weights, readiness, addresses, hostnames and subdomains; Services' selectors,
// ports and clusterIPs). Candidate pods of a Service are found through a
// namespace/label index, the rarest label of its selector first, so the
// cost follows the pods selected, not Services x pods. A *store.Store also
// satisfies State (tests, tools).
//
// UDP on a specific address is served by a loop of batched reads and writes
// (recvmmsg/sendmmsg, see udp.go); UDP on a wildcard address and TCP use
// miekg/dns's Server. Both apply the same packet checks: responses are
// ignored, malformed queries get FORMERR, non-queries NOTIMP. Replies carry
// EDNS0 when the query did, are truncated (TC) to the client's UDP size, at
// most 1232 bytes, and are complete over TCP.
//
// # Performance
//
// In process (go test -bench . ./dns/): Index.Answer about 170 ns and 3
// allocations; BuildIndex of 1030 services and 3090 pods about 18 ms. At the
// scale test's shape (500 Services x 60 pods, one namespace), computing
// every name takes about 80 ms with BuildIndex and 115 ms with a Builder
// (BenchmarkBuildIndex_500Services30kPodsOneNamespace, BenchmarkBuilder_full;
// the Builder also indexes pods for its next update), and the update after
// one pod turns Ready about 0.35 ms (BenchmarkIndexUpdate_onePodReady), or
// 16 ms while every pod of a snapshot is a new copy
// (BenchmarkIndexUpdate_onePodReadyCopies). Medians of 5 runs on the 2-core
// development machine, shared with other builds.
//
// Virtual IPs and per-pod names cost nothing measurable there. Before and
// after them, alternating the two test binaries (8 and 12 runs, benchstat)
// on the same machine under other builds' load (+-30-50 % noise): BuildIndex
// of the 1030 Services with two named ports is faster (-46 %, 24 % fewer
// allocations: an endpoint's name is made once, not once per named port);
// Answer, ServeDNS, the scale test's BuildIndex, the incremental updates
// and a full Builder did not change beyond the noise (Builder_full read
// +56 % at p=0.03 in one run and +1 %, p=0.8, in the next). A virtual IP answer is a map lookup like any other
// (3 allocations for A, 4 for SRV with its additional records;
// BenchmarkAnswer/VirtualIP_*). Once every Service has a virtual IP, the
// scale test's BuildIndex takes about 2 ms instead of 80 (pods are neither
// indexed nor read: BenchmarkBuildIndex_500Services30kPodsVirtualIPs), and
// a pod turning Ready recomputes nothing, about half the time of the
// headless update (BenchmarkIndexUpdate_onePodReadyVirtualIPs, 1,012
// allocations against 1,723). Headless Services whose pods all set
// hostname and subdomain (two names per endpoint) update in about the
// same time as the others, with 300 more allocations for the Service's 60
// endpoints (BenchmarkIndexUpdate_onePodReadyHostnames).
//
// Weighted answers (BenchmarkAnswer/Weighted_A and Weighted_SRV: a
// headless Service of 4 stable pods and a canary) allocate as the others
// (3 allocations for A, 4 for SRV). Before and after weights, alternating
// the two test binaries (12 runs each, benchstat) on the 2-core machine at
// a load of 10 (other builds and end-to-end tests: +-50-120 % noise), no
// Answer, ServeDNS or BuildIndex timing moved beyond the noise but two
// (MixedCase +58 %, VirtualIP_A +110 %, p=0.04 and 0.02, paths that gained
// only a nil check; not seen in the 6-run series before it, which had
// everything within the noise) and every answer allocates the same bytes;
// BuildIndex allocates 7 % more bytes (an endpoint carries its group and
// weight), the same number of times. The timings of record above predate
// weights and were not remeasured on a quiet machine.
//
// Over loopback with dnsperf on the 2-core development machine: about
// 110,000 queries/s (miekg/dns's UDP server alone: about 90,000), where most
// of the time is the kernel's sendmmsg. To reproduce, serve the benchmark
// cluster from an embedded store for 60 s, then run dnsperf against it:
//
//	BOSUN_DNSPERF_SERVE=60s go test -run TestServeForDNSPerf ./dns/ &
//	dnsperf -s 127.0.0.1 -p 5353 -d dns/testdata/dnsperf-queries.txt -l 20 -c 20 -Q 500000
//
// BOSUN_DNSPERF_LISTEN changes the address (0.0.0.0:5353 measures the miekg/dns
// UDP path).
//
// Metrics (metrics.go), given Config.Registerer: bosun_dns_queries_total{qtype,
// rcode} counts every reply (qtype A, AAAA, SRV, PTR, CNAME, TXT, MX, NS, SOA,
// HTTPS, ANY or other; none for a packet refused before its question was
// read; rcode by name), from counters made once per pair, so that the hot
// path does no label lookup; bosun_dns_upstream_duration_seconds and
// bosun_dns_upstream_failures_total follow each exchange with an upstream
// resolver. The index's are bosun_dns_index_*.
package dns
