// Package api serves bosun's HTTP API: the read side of the cluster state
// for the CLI (status and every kind bosun runs), a sync trigger, /healthz
// and /metrics.
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
//
//	GET  /api/v1/status                 Status (leader, sync, nodes, deployments, services with their ClusterIP and ready endpoints, canaries)
//	GET  /api/v1/{pods,deployments,services,nodes,configmaps,secrets,namespaces,jobs,cronjobs}[/NAME][?namespace=NS]
//	GET  /api/v1/endpoints[/SERVICE][?namespace=NS]   the Services' EndpointSlices (kube.EndpointSlices)
//	GET  /api/v1/prometheus/targets[?namespace=NS]   Prometheus HTTP service discovery (http_sd_configs): the pods annotated prometheus.io/scrape (PromTargets)
//	GET  /api/v1/canaries[?namespace=NS]             every canary (CanaryList)
//	GET  /api/v1/canaries/[NS/]NAME                  one canary (CanaryStatus); 404 when the Deployment has none
//	GET  /api/v1/history                the revisions seen and canary events, newest first
//	POST /api/v1/plan                   preview a ref or a directory (PlanRequest)
//	GET  /api/v1/logs/NS/POD            a container's log (?container, follow, previous, tail)
//	POST /api/v1/sync                   ask the leader to fetch the repository now
//	POST /api/v1/webhooks/git           Git push webhooks (GitHub, GitLab, Gitea/Forgejo, generic HMAC)
//	GET  /healthz                       200 once etcd answers
//	GET  /metrics                       Prometheus metrics
package api
