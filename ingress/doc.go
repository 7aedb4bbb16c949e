// Package ingress is bosun's built-in Ingress controller: a reverse proxy
// that serves the networking.k8s.io/v1 Ingresses of the cluster, run by a
// server or an agent given --ingress-listen (HTTP) and/or
// --ingress-tls-listen (HTTPS).
//
// # Route table (routes.go, pure)
//
// Build turns Ingresses, IngressClasses, Services, pods and Secrets into an
// immutable Table; it reads no clock, does no I/O, and is tested by tables
// and a fuzzer. Only Ingresses of bosun's classes are served: the built-in
// class "bosun" (never declared), and IngressClasses whose spec.controller
// is "bosun.dev/ingress"; an Ingress without ingressClassName belongs to the
// default class (bosun's, unless a class of another controller carries
// ingressclass.kubernetes.io/is-default-class: "true"; validation refuses
// such repositories anyway).
//
// Matching, as Kubernetes specifies it:
//
//	host   exact (case-insensitive, port and trailing dot ignored), then a
//	       wildcard "*.example.com" (one label: not "example.com", not
//	       "a.b.example.com"), then rules without host, then the
//	       defaultBackend; no match is 404. A host whose paths do not match
//	       falls through to the next kind (Traefik's behaviour; ingress-nginx
//	       answers the host's default instead).
//	path   Exact equals the path; Prefix matches by elements ("/foo" matches
//	       "/foo", "/foo/", "/foo/bar", never "/foobar"); ImplementationSpecific
//	       is Prefix. The longest path wins; at equal length Exact beats
//	       Prefix. The request path is matched with "." and ".." resolved.
//	dups   the same host, path and type in two Ingresses: the first by
//	       namespace/name wins, the other is a warning (Table.Warnings), as
//	       is a second defaultBackend.
//
// A backend is one port of one Service (by number or name; TCP); its
// endpoints are the Service's ready pods (kube.Endpoint, kube.EndpointPort:
// the same rules as DNS and the Service proxy). The proxy connects to the
// pods directly, not through the Service's virtual IP: it works on a server
// without the nftables proxy and on any node, and it honours canary weights
// per request (Backend.Pick: each run of W requests gives each track exactly
// its bosun.dev/weight), where a virtual IP would split kept-alive
// connections. A backend without a ready endpoint answers 503.
//
// # Server (server.go)
//
// Server swaps tables atomically (SetTable, an atomic.Pointer): a request
// keeps the backend it matched, and a swap closes no connection. Requests go
// through httputil.ReverseProxy (Rewrite), which keeps the client's Host
// header and sets X-Forwarded-For, -Host and -Proto, passes WebSocket
// upgrades through, and streams answers without a length at once; bodies
// are copied through pooled 32 KiB buffers (not one made per request). Backends
// are spoken to in HTTP/1.1; clients may use HTTP/2 over TLS (ALPN) and,
// with Config.H2C, HTTP/2 without TLS. HTTPS picks its certificate by SNI
// from the Secrets (type kubernetes.io/tls, keys tls.crt and tls.key) named
// in the Ingresses' tls sections (exact host, then one-label wildcard, then
// an entry without hosts), else a self-signed certificate made in memory at
// start. The server sets ReadHeaderTimeout and IdleTimeout and no write
// timeout, so long requests and WebSockets live as long as their peers. On
// shutdown it lets requests finish for ShutdownTimeout, then cuts them and
// upgraded connections, and waits for every handler.
//
// Access logs (Config.AccessLog) are JSON lines: method, host, path (never
// the query), proto, tls, status, bytes, duration (seconds), upstream,
// namespace, ingress, remote. Headers are never logged.
//
// Metrics: bosun_ingress_requests_total{namespace,ingress,code} (empty
// namespace and ingress: no route matched),
// bosun_ingress_request_duration_seconds{namespace,ingress},
// bosun_ingress_upstream_errors_total{namespace,ingress,reason}
// (no_endpoint, connect, response), bosun_ingress_requests_in_flight, and
// for the loop that follows the store bosun_ingress_table_builds_total,
// bosun_ingress_table_build_duration_seconds, bosun_ingress_routes,
// bosun_ingress_ingresses, bosun_ingress_certificates.
//
// Load test: TestIngressLoad (bench_test.go, BOSUN_BENCH_INGRESS=1, make
// bench) measures, interleaved in one run, straight to the backends,
// through this Server (in a child process, so that its CPU time is its
// own) and through Debian's nginx configured for the same routes, over
// HTTP and HTTPS; figures in BENCHMARKS.md.
//
// # Following the store (follow.go)
//
// Follow rebuilds the table from a store.Cache on every change of
// Ingresses, IngressClasses, Services, pods, pod statuses or Secrets.
package ingress
