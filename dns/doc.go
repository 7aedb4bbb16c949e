// Package dns is bosun's cluster DNS server: it answers names of the cluster
// domain from the store and forwards every other name to upstream resolvers.
//
// # Names
//
// With the domain cluster.local (Config.Domain), a Service <svc> in namespace
// <ns> answers as Kubernetes answers a headless Service (every Service is
// headless until service virtual IPs exist):
//
//	<svc>.<ns>.svc.cluster.local                 A/AAAA  the ready endpoints
//	_<port>._<proto>.<svc>.<ns>.svc.cluster.local SRV    one per endpoint, for named ports
//	<ip-with-dashes>.<svc>.<ns>.svc.cluster.local A/AAAA  the SRV targets
//
// Endpoints are the pods of the Service's namespace that its (non-empty)
// selector matches, that are Ready (condition Ready=True), have a PodIP and no
// deletion timestamp; addresses are sorted. A name that exists without records
// of the asked type, such as a Service without ready endpoints or AAAA of an
// IPv4 Service, is NODATA (NOERROR, no answer, the SOA in the authority
// section); an unknown name of the domain is NXDOMAIN with the SOA. Names are
// case-insensitive. Names outside the domain are forwarded to the upstreams in
// order, keeping the query id; SERVFAIL when none answers.
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
// name and its records are shared with the previous Index. Names are spread
// over 256 maps by Service (copy on write), so an update copies the maps it
// writes, not the whole domain. The first load and a retry after a failed
// read compute everything from nothing; the resync every 30 s (free when
// the snapshot's revision did not move) is an update like any other, which
// catches a missed notification without holding answers up for a full
// rebuild. The answers are those of
// BuildIndex of the same input, which a property test checks after every
// step of random changes. Candidate pods of a Service are found through a
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
package dns
