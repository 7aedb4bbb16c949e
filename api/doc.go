// Package api serves bosun's HTTP API: the read side of the cluster state
// for the CLI (status, pods, deployments, services, nodes), a sync trigger,
// /healthz and /metrics.
//
// Every replica serves the API from its own view of etcd, so the CLI can
// talk to any of them. Lists are Kubernetes-shaped: a "List" whose items are
// v1.Pod, apps/v1.Deployment, v1.Service and v1.Node objects, so tools that
// read `kubectl get -o json` output read bosun's too.
//
//	GET  /api/v1/status                 Status (leader, sync, nodes, deployments, services)
//	GET  /api/v1/{pods,deployments,services,nodes}[/NAME][?namespace=NS]
//	POST /api/v1/sync                   fetch the repository now (leader only)
//	GET  /healthz                       200 once etcd answers
//	GET  /metrics                       Prometheus metrics
package api
