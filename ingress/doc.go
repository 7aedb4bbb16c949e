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
// The request counters live in Cursors (owned by the Server), keyed by the
// backend's namespace/service:port, not in the table: Follow rebuilds the
// table on every pod change of the cluster, and counters that started at
// zero in each table would hand the first group (the canary, by name) the
// first requests of every table. A weighted run is interleaved as nginx's
// smooth weighted round robin (weights 90/10: one canary request after
// every nine stable ones), from the weights over their GCD (runs longer
// than 1024 take their slots in a row). Backend.PickN is the pure choice
// of the n-th request.
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
// start. A Secret whose key pair does not parse (a key of another
// certificate, garbage) is left out with a warning naming it, never its
// content: its hosts get the default certificate, the others are unaffected.
//
// Timeouts: ReadHeaderTimeout (10 s) for a request's headers, IdleTimeout
// (2 min) between keep-alive requests, and StallTimeout (60 s, nginx's
// client_body_timeout and send_timeout): a request whose client sends no
// byte of its unfinished body, or takes no byte of its answer, for that
// long is cut (408 when the body stalled; not an upstream error). Every
// byte renews it, so a long upload or stream that moves lives on; there
// is no overall read or write timeout, and an upgraded connection
// (WebSocket) has none at all. On shutdown the server lets requests finish
// for ShutdownTimeout, then cuts them and upgraded connections, and waits
// for every handler.
//
// Until the first table is set (Run serves before the cache's first list)
// every request gets 503 with Retry-After: 1, never a 404 that would say
// the route does not exist.
//
// Headers that tell the backend who the client is are the proxy's, never
// the client's: X-Forwarded-For (the client's address only: a client's
// value is replaced, not appended to), X-Forwarded-Host, -Proto, -Port
// (the listener's port) and X-Real-IP are set; Forwarded, True-Client-IP,
// X-Client-IP, X-Cluster-Client-IP, X-Original-Forwarded-For,
// X-Forwarded-Server, -Prefix, -Scheme, -Ssl, X-Scheme, X-Original-URL,
// X-Original-URI and X-Rewrite-URL are removed.
//
// Access logs (Config.AccessLog) are JSON lines: method, host, path (never
// the query), proto, tls, status, bytes, duration (seconds), upstream,
// namespace, ingress, remote. Headers are never logged.
//
// Metrics: bosun_ingress_requests_total{namespace,ingress,code} (empty
// namespace and ingress: no route matched),
// bosun_ingress_request_duration_seconds{namespace,ingress},
// bosun_ingress_upstream_errors_total{namespace,ingress,reason}
// (no_service, no_port, no_endpoint: 503; connect, response: 502),
// bosun_ingress_requests_in_flight, and
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
//
// Where it runs: on an agent (bosun agent --ingress-listen), or on a server
// with its node agent (the default --agent). A server started with
// --agent=false refuses the ingress flags (exit 2): the proxy sends
// requests straight to pods, and only a node agent sets up the routes to
// the pod subnets.
//
// # Answers that name nothing internal
//
// A 503 says "503 service unavailable", nothing more; why (no such
// Service, no such port, no ready pod, and the backend's
// namespace/service:port) goes to the debug log and to the reason label of
// bosun_ingress_upstream_errors_total. A 502 has no body; its error is
// logged at debug level without the request's URL.
//
// # Limits
//
//   - Everything an Ingress routes to is public to whoever reaches the
//     listen address: the proxy has no authentication, no rate limit and
//     no cap on body size. Route only to apps meant for the world, and
//     bind --ingress-listen to loopback to try things out (the example app
//     bosun-hello reads files and the environment and fetches URLs for
//     tests: it must never be routed to from a public address).
//   - X-Forwarded-For is replaced, never appended to, and there is no list
//     of trusted proxies: behind another load balancer the backend sees
//     that balancer's address as the client.
//   - Requests go straight to the pods: a Service's sessionAffinity,
//     internalTrafficPolicy and externalTrafficPolicy do not apply to them.
//   - Matching differs from ingress-nginx where Kubernetes leaves it open:
//     a host whose paths miss falls through to the wildcard and host-less
//     rules (Traefik's way), ImplementationSpecific is Prefix, and no
//     annotation (rewrite-target, use-regex, ...) is read; validation
//     refuses paths that never match and regular expressions.
//   - The ingress ports are not reserved from pods: with
//     --allow-host-network, a pod with hostPort 80 on a node whose ingress
//     listens on :80 takes that port's traffic (the CNI portmap DNAT comes
//     before the local socket), and a hostNetwork pod that binds it first
//     makes the ingress fail to start. Keep host ports off the ingress ports.
//   - An Upgrade is forwarded as asked, h2c included: after it, the
//     connection is a tunnel to the pod that later requests on it are not
//     routed through.
package ingress
