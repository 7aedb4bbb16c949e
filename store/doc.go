// Package store keeps bosun's cluster state in etcd.
//
// Every value is the JSON of a Kubernetes API type, under one prefix:
//
//	/bosun/nodes/<name>             corev1.Node, put by a node agent under its lease
//	/bosun/pods/<ns>/<name>         corev1.Pod (metadata and spec; spec.nodeName once bound), put by the leader
//	/bosun/podstatus/<ns>/<name>    PodStatus, put by the node agent that runs the pod
//	/bosun/deployments/<ns>/<name>  appsv1.Deployment with its computed status, put by the leader
//	/bosun/services/<ns>/<name>     corev1.Service, put by the leader
//	/bosun/configmaps/<ns>/<name>   corev1.ConfigMap, put by the leader, read by agents
//	/bosun/secrets/<ns>/<name>      corev1.Secret, put by the leader, read by agents
//	/bosun/namespaces/<name>        corev1.Namespace declared in Git, put by the leader
//	/bosun/jobs/<ns>/<name>         batchv1.Job with its computed status, put by the leader
//	/bosun/cronjobs/<ns>/<name>     batchv1.CronJob with its status (last schedule time), put by the leader
//	/bosun/sync                     SyncStatus, put by the leader
//	/bosun/desired                  the last good revision's objects (gzipped Desired), put by the leader
//	/bosun/history/<seq>            HistoryEntry per revision seen, put by the leader, bounded
//	/bosun/syncrequest              a request to fetch Git now, put by any replica (API, webhooks)
//	/bosun/clusterkey               32 random bytes keying configuration hashes, created once by the first reader
//	/bosun/election/                the leader election (etcd's concurrency.Election)
//
// Desired state (pods, deployments, services, sync, desired, history) is written only by the
// elected leader, and only through Leadership.Apply: a transaction that
// succeeds only while the leader's election key still exists, so a deposed
// leader cannot write. Observed state (nodes, pod statuses) is written by
// node agents under their own keys, so the two never contend.
//
// Readers take a Snapshot (one consistent read of everything) and re-read
// when Changes signals; the store is level-triggered, like an informer
// that resyncs on every event.
package store
