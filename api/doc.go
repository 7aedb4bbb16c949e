// Package api serves bosun's HTTP API: the read side of the cluster state
// for the CLI (status and every kind bosun runs), a sync trigger, /healthz,
// /readyz and /metrics, and the web dashboard (package dashboard), over
// HTTPS, with bearer tokens of two roles.
//
// Every replica serves the API from its own view of etcd, so the CLI can
// talk to any of them: status and get read the replica's store.Cache
// (Config.State), memory kept current by a watch, so a request costs no
// etcd read (leader and history are read from etcd as before); sync requests and webhooks go to the leader through
// etcd. Lists are Kubernetes-shaped: a "List" whose items are the objects
// with their apiVersion and kind (the collections are in kinds.go, one
// table), so tools that read `kubectl get -o json` output read bosun's too.
// Secrets are the exception: an item is a SecretSummary, a Secret's
// metadata, type and keys with the size of each value, never a value.
// Namespaces lists those declared in Git and, marked AnnotationImplied,
// those objects use without a manifest declaring them. SummarizePod derives a
// pod's READY, STATUS and RESTARTS as kubectl prints them (Init:1/2,
// Init:CrashLoopBackOff, PodInitializing, sidecars counted as containers),
// for the CLI and the status summary, which lists pods still initializing.
// Services are stored with the addresses the leader gave them
// (spec.clusterIP(s), ports[].nodePort); their endpoints are served as
// discovery.k8s.io/v1 EndpointSlices, from kube.EndpointSlices, the model
// DNS and the Service proxy read.
// Canaries (BuildCanaries) are served from the stored canary.State, never
// its pod template (env values from Git; the hash names it), with the spec
// parsed from main's Deployment annotations, the canary's pods and the
// stable ones from the cache, the weights and when the next step is due; a
// Deployment that asks for a canary whose branch the leader has not
// fetched yet shows as PhaseWaiting. Status carries one CanarySummary per
// canary. A plan of a canary branch (PlanResult.Canaries) says what the
// canary would run.
// Nodes (nodeops.go) lists every known node (store.Snapshot.KnownNodes):
// a node whose agent's registration lapsed stays, NotReady, its Ready
// condition False since the leader recorded it (store.NodeHealth, with the
// leader's message: when its pods are, or were, replaced elsewhere); a
// cordoned or draining node is unschedulable, annotated with who
// cordoned it and when.
//
// # Authentication, roles, TLS and audit
//
// The API serves HTTPS only (Run refuses to start without
// Config.Certificate): a certificate from files (LoadCertificate), or one
// generated on the first start and reused until a third of its validity
// is left (GeneratedCertificate): ECDSA P-256, naming CertificateHosts,
// issued by an Issuer (in a replica the cluster CA, served after the
// certificate, so that a machine joining with a token that names the CA
// can check the API) or else self-signed. Run logs the certificate's
// Fingerprint ("SHA256:" and base64, as SSH prints keys), which the CLI
// pins on first use like SSH's known_hosts.
//
// Every request goes through authorize. Each route declares its Access
// in one table (routes.go; Routes lists it): Public (no token: /healthz,
// /readyz, the webhook receiver, which checks its own HMAC, and
// Config.Routes with credentials of their own, such as the cluster's join
// endpoint), ReadOnly (any valid token) or Admin (an admin token). A
// route registered on the mux outside the table is refused to everybody
// (500), and a path no route serves needs a token too (401 before 404).
// Tokens are bearer tokens (Authorization: Bearer TOKEN) listed by their
// SHA-256 in a tokens file, one role:name:sha256:<hex> per line
// (ParseTokens; role admin or read-only; the name is the actor in audit
// lines). Tokens re-reads the file when it changes, so a token is added
// or revoked without a restart; an edit that does not parse changes
// nothing and is logged. A presented token is hashed and compared with
// every hash in constant time. Answers: 401 with WWW-Authenticate: Bearer
// without a valid token, 403 when the token's role does not allow the
// route, 429 with Retry-After once a client address (an IPv4 address, an
// IPv6 /64) has failed AuthLimit times (10, then one more every 6 s; a
// request without any Authorization header is refused but does not
// count). While blocked, a client is refused whatever token it sends:
// otherwise the limit would not limit guessing. The counter
// bosun_api_auth_failures_total{reason} counts refusals (missing_token,
// malformed, invalid_token, forbidden, rate_limited). TokenFrom gives a
// handler the caller's token (role and name, never the token).
//
// The web dashboard (package dashboard; dashboard.go, cookie.go, watch.go)
// is served at / with its files under /assets/, Public: they hold no
// data. A token given to its login form (POST /login) or in a link
// (GET /?token=TOKEN, which redirects to / so that the token leaves the
// URL) is checked like a bearer token (failures count against the same
// limit) and kept in a cookie (CookieName: HttpOnly, Secure over TLS,
// SameSite=Strict) that authenticate accepts where no Authorization header
// is sent. A change (any method but GET, HEAD, OPTIONS) authenticated by
// the cookie also needs the CSRFHeader and, when the browser names one, the
// API's own origin: else 403, counted as reason csrf. POST /logout clears
// the cookie; a cookie whose token was revoked is cleared by its 401.
// GET /api/v1/watch streams Server-Sent Events for the page: "ready" once
// its subscriptions to the replica's cache (and etcd watches of history
// and events) are in place, then "changed" naming the kinds that changed
// (WatchKinds), gathered over WatchCoalesce, and a heartbeat comment every
// WatchHeartbeat; it ends when the client goes (bosun_api_watch_streams,
// bosun_api_watch_events_total{kind}, bosun_api_watch_heartbeats_total,
// bosun_api_watch_stream_duration_seconds).
//
// Audit (package audit: audit=true, event, actor): every call of an Admin
// route logs one line, event the route's Event ("api.sync"), actor the
// token's name, with role, remote (the client's address), method, path,
// status and result (done, failed, forbidden: a read-only token's attempt
// is audited too). Every webhook, accepted or refused, logs one line,
// event webhook.accepted or webhook.refused, actor webhook:<provider>,
// with remote, delivery (X-GitHub-Delivery, X-Gitea-Delivery,
// X-Forgejo-Delivery, X-Gitlab-Event-UUID, X-Gitlab-Webhook-UUID or
// X-Bosun-Delivery), status, result and detail. Tokens, token hashes and
// the webhook secret never appear in a log line or an answer.
//
// Routes (R: read-only, A: admin, P: public):
//
//	R GET  /api/v1/status                 Status (leader, sync, nodes, deployments, services with their ClusterIP and ready endpoints, canaries)
//	R GET  /api/v1/{pods,deployments,services,nodes,configmaps,secrets,namespaces,jobs,cronjobs}[/NAME][?namespace=NS]
//	R GET  /api/v1/endpoints[/SERVICE][?namespace=NS]   the Services' EndpointSlices (kube.EndpointSlices)
//	R GET  /api/v1/prometheus/targets[?namespace=NS]   Prometheus HTTP service discovery (http_sd_configs): the pods annotated prometheus.io/scrape (PromTargets)
//	R GET  /api/v1/canaries[?namespace=NS]             every canary (CanaryList)
//	R GET  /api/v1/canaries/[NS/]NAME                  one canary (CanaryStatus); 404 when the Deployment has none
//	R GET  /api/v1/history                the revisions seen and canary events, newest first
//	R GET  /api/v1/events                 events (store.Event) of agents and servers, oldest first: EventList
//	                                      {"events": [...]}; ?namespace= (default all), kind=, name=, limit= (the newest N)
//	R GET  /api/v1/watch                  Server-Sent Events naming the kinds that changed (the dashboard's live feed)
//	R GET  /api/v1/dashboard/pods         each pod's line as the dashboard shows it (PodRows)
//	R GET  /api/v1/dashboard/nodes        each node's allocatable and what its pods request (NodeRows)
//	R POST /api/v1/plan                   preview a ref or a directory (PlanRequest); it changes nothing
//	R GET  /api/v1/logs/NS/POD            a container's log (?container, follow, previous, tail)
//	A POST /api/v1/sync                   ask the leader to fetch the repository now
//	A POST /api/v1/nodes/NAME/cordon      no new pod on the node (store.NodeControl; nodeops.go)
//	A POST /api/v1/nodes/NAME/uncordon    schedulable again; a drain stops
//	A POST /api/v1/nodes/NAME/drain       cordon and move the pods away (DrainRequest{force}); 409 naming the
//	                                      pods no controller owns, without force
//	R GET  /api/v1/nodes/NAME/drain       where the drain stands (reconciler.DrainProgress)
//	P POST /api/v1/webhooks/git           Git push webhooks (GitHub, GitLab, Gitea/Forgejo, generic HMAC)
//	P GET  /                              the web dashboard (package dashboard); ?token=TOKEN logs in and redirects to /
//	P GET  /assets/FILE                   the dashboard's script and style
//	P POST /login                         the dashboard's login form (token=...): sets the session cookie
//	P POST /logout                        clears it
//	P GET  /healthz                       200 once etcd answers
//	P GET  /readyz                        200 once etcd answers and this replica's cache holds the state
//	R GET  /metrics                       Prometheus metrics
//
// Every request is counted (metrics.go) in bosun_api_requests_total{route,
// code} and bosun_api_request_duration_seconds{route}: route is the pattern
// that matched ("GET /api/v1/{kind}/{name}"), or "unmatched", never the raw
// path, so that clients cannot grow the label set; streams count their
// whole life.
package api
