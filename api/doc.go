// Package api serves bosun's HTTP API: the read side of the cluster state
// for the CLI (status, pods, deployments, services, nodes), a sync trigger,
// /healthz and /metrics.
//
// Every replica serves the API from its own view of etcd, so the CLI can
// talk to any of them; sync requests and webhooks go to the leader through
// etcd. Lists are Kubernetes-shaped: a "List" whose items are
// v1.Pod, apps/v1.Deployment, v1.Service and v1.Node objects, so tools that
// read `kubectl get -o json` output read bosun's too. SummarizePod derives a
// pod's READY, STATUS and RESTARTS as kubectl prints them (Init:1/2,
// Init:CrashLoopBackOff, PodInitializing, sidecars counted as containers),
// for the CLI and the status summary, which lists pods still initializing.
//
//	GET  /api/v1/status                 Status (leader, sync, nodes, deployments, services)
//	GET  /api/v1/{pods,deployments,services,nodes}[/NAME][?namespace=NS]
//	GET  /api/v1/history                the revisions seen, newest first
//	POST /api/v1/plan                   preview a ref or a directory (PlanRequest)
//	GET  /api/v1/logs/NS/POD            a container's log (?container, follow, previous, tail)
//	POST /api/v1/sync                   ask the leader to fetch the repository now
//	POST /api/v1/webhooks/git           Git push webhooks (GitHub, GitLab, Gitea/Forgejo, generic HMAC)
//	GET  /healthz                       200 once etcd answers
//	GET  /metrics                       Prometheus metrics
package api
