// Package store keeps bosun's cluster state in etcd.
//
// Every value is the JSON of a Kubernetes API type, under one prefix; the
// values marked [encrypted] carry Secret data and are stored encrypted
// (see Secrets at rest):
//
//	/bosun/nodes/<name>             corev1.Node, put by a node agent under its lease
//	/bosun/pods/<node>/<ns>/<name>  corev1.Pod (metadata and spec) bound to <node>, put by the leader
//	/bosun/pods/-/<ns>/<name>       corev1.Pod not bound yet ("-" is never a node name: names are DNS subdomains)
//	/bosun/podstatus/<node>/<ns>/<name>  PodStatus, put by the agent of <node>, which runs the pod
//	/bosun/nodesubnets/<node>       NodeSubnet: the node's pod subnet (or a refusal), put by the leader; DeleteNode removes it
//	/bosun/cluster/network          ClusterNetwork: cluster CIDR, node mask size, backend, put by the leader
//	/bosun/deployments/<ns>/<name>  appsv1.Deployment with its computed status, put by the leader
//	/bosun/services/<ns>/<name>     corev1.Service, put by the leader
//	/bosun/configmaps/<ns>/<name>   corev1.ConfigMap, put by the leader, read by agents
//	/bosun/secrets/<ns>/<name>      corev1.Secret, put by the leader, read by agents [encrypted]
//	/bosun/namespaces/<name>        corev1.Namespace declared in Git, put by the leader
//	/bosun/jobs/<ns>/<name>         batchv1.Job with its computed status, put by the leader
//	/bosun/cronjobs/<ns>/<name>     batchv1.CronJob with its status (last schedule time), put by the leader
//	/bosun/daemonsets/<ns>/<name>   appsv1.DaemonSet with its computed status, put by the leader
//	/bosun/statefulsets/<ns>/<name> appsv1.StatefulSet with its computed status, put by the leader
//	/bosun/persistentvolumeclaims/<ns>/<name>
//	                                corev1.PersistentVolumeClaim (from Git or a StatefulSet's
//	                                volumeClaimTemplates) with its binding, put by the leader
//	/bosun/ingresses/<ns>/<name>    networkingv1.Ingress, put by the leader
//	/bosun/ingressclasses/<name>    networkingv1.IngressClass, put by the leader
//	/bosun/sync                     SyncStatus, put by the leader
//	/bosun/desired                  the last good revision's objects (gzipped Desired, with its Secrets), put by the leader [encrypted]
//	/bosun/history/<seq>            HistoryEntry per revision seen, put by the leader, bounded
//	/bosun/syncrequest              a request to fetch Git now, put by any replica (API, webhooks)
//	/bosun/clusterkey               32 random bytes keying configuration hashes, created once by the first reader [encrypted]
//	/bosun/election/                the leader election (etcd's concurrency.Election)
//	/bosun/nodecontrol/<node>       NodeControl: cordon and drain (unschedulable, drain, who, when), put by the
//	                                server that takes the API call (any replica, not fenced); never by an agent
//	/bosun/nodehealth/<node>        NodeHealth: Ready or NotReady since when and why, put by the leader for
//	                                each known node (Snapshot.KnownNodes), deleted when the node is no longer known
//	/bosun/leaderstamp              LeaderStamp: the leader and election key of the last fenced write, put by every one
//	/bosun/events/<source>/<ns>/<id>  Event (Kubernetes-like: type, reason, object, message, count, first and
//	                                last time), put by a Recorder under a lease; <source> is a node's name (its
//	                                agent's events; AllowNode lets a node write only its own) or "-" (servers)
//
// Desired state (pods, deployments, services, sync, desired, history) is written only by the
// elected leader, and only through Leadership.Apply: a transaction that
// succeeds only while the leader's election key still exists, so a deposed
// leader cannot write. Observed state (nodes, pod statuses) is written by
// node agents under their own keys, so the two never contend.
//
// # Secrets at rest
//
// The values that carry Secret data (a Secret; the desired state, which
// holds the applied revision's Secrets; the cluster key, which keys the
// hashes of Secrets put on pod templates) are encrypted as Kubernetes'
// encryption at rest does it with its aesgcm provider:
//
//	k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><AES-256-GCM ciphertext and tag>
//
// The nonce is random (crypto/rand) and the etcd key is the additional
// authenticated data, so a value copied to another key does not decrypt.
// History entries (their Changes name objects, never values), pods (env
// values from Git, and references to Secrets by name) and the rest are
// plain JSON. A Keyring holds named 32-byte keys, the first (primary)
// encrypts, every one decrypts; New(cli, WithKeyring(k)) gives it to a
// Store, which gives it to its Cache. LoadKeyring reads a key file (one
// name:base64 a line, mode 0600), ParseKeyring its content (a node that
// receives it), CreateKeyFile, AddKey, PromoteKey and RemoveKey manage one
// (bosun secrets ...).
//
// Leadership.Apply encrypts the values of those keys with the primary key
// before it cuts the plan into transactions; a Store without a keyring
// refuses such a plan whole. Readers decrypt where they decode: the Cache
// once per watch event, Store.Secret, Snapshot, Desired and ClusterKey. A
// value that is not an envelope (written by a bosun that did not encrypt)
// is read as it is. One that cannot be decrypted (its key is not in the
// keyring, or it was altered or moved) is an error that wraps
// ErrCannotDecrypt and names the etcd key and the key name it needs, never
// the value; the Cache leaves such a value out, logs that error and counts
// it in bosun_cache_decode_errors_total. KeysInUse counts the values by
// the key that encrypts them, without decrypting; Leadership.Reencrypt
// rewrites, in fenced transactions, every value in plain text or
// encrypted with another key than the primary one: a leader runs it when
// it takes over, so that after a rotation (a new primary key, a restart)
// the old key can be removed.
//
// Encryption costs microseconds a value: 5 µs to seal and 4 µs to open
// 1 KiB (BenchmarkKeyring), 4.4 ms to seal a plan of 1,000 Secrets of
// 1.1 kB and the desired state holding them (BenchmarkSealOps_1kSecrets),
// which etcd writes in 60-115 ms with or without it
// (BenchmarkLeadershipApply_1kSecrets: medians of 5, 92 ms plain and 80 ms
// encrypted, within the noise of etcd's fsync; a 2-core VM shared with
// other work, go test -bench 'Keyring|SealOps|1kSecrets' -count 5 ./store).
// etcd keeps earlier revisions of a key until it compacts them, and its
// database file keeps freed pages until a defragmentation: a value once
// written in plain text leaves etcd's files only after both.
//
// # Pods are keyed by their node
//
// A node's agent watches exactly /bosun/pods/<its node>/ (NodePodsPrefix),
// so its start-up list and its steady watch cost what its own pods cost,
// whatever the size of the cluster: a thousand agents against one etcd do
// not each receive every pod change. A pod is stored once (a per-node
// index beside a flat layout would double the leader's writes). Binding a
// pod moves its key from the unbound prefix to its node's: MovePod is one
// Op of a delete and a put, and Leadership.Apply never splits an Op across
// transactions, so a pod is never absent nor stored twice. Deleting a pod
// needs its node; the leader finds it in the snapshot it planned from.
// Statuses are keyed by the node that reports them, so that etcd itself
// lets a node write only its own (see AllowNode): readers merge a pod with
// the status its own node reported, and only that one; a status no pod on
// its node claims is a terminating pod's. An agent reads, at start, only
// the statuses of the pods it adopts (PodStatusesOf, one transaction of
// Gets per 120 keys). Statuses of the older layout
// (/bosun/podstatus/<ns>/<name>) are not read; agents write them anew.
//
// Keys of the older layout (/bosun/pods/<ns>/<name>) are read
// transparently by Snapshot and Cache (a key with two segments after
// pods/ is old, three is new), and a leader moves them under their node on
// takeover, in fenced transactions (Leadership.MigratePodKeys), before its
// first plan: agents, which only watch their prefix, see them from then.
//
// # Reading: the Cache
//
// Every process reads the state from one Cache (client-go's informer,
// Nomad's state store): it lists its prefixes in one transaction, at one
// revision, then watches /bosun/ from the next revision, decoding each
// event once into an immutable object. Snapshot returns a *Snapshot of the
// same shape as Store.Snapshot (pods merged with the status of the same
// UID, Terminating for statuses no pod claims); it is the same object
// until something changes, and a change rebuilds only the lists of the
// kinds it touched (a pod status report rebuilds the pod list, by copying
// the previous one and replacing the pods that changed). Snapshots are
// shared: readers must not modify them. Changes notifies per kind,
// coalescing; WaitFor(rev) waits until the cache shows a revision, which
// is how the leader reads its own writes: Leadership.Revision is the
// revision of its last transaction, and the next plan waits for it. A
// watch that breaks resumes from the applied revision; a revision that was
// compacted meanwhile forces a relist, swapped in whole and counted in
// bosun_cache_relists_total{reason="compacted"}. With a Registerer the
// cache also exports bosun_cache_objects{kind}, bosun_cache_revision,
// bosun_cache_snapshot_rebuild_seconds and bosun_cache_decode_errors_total
// (a value that does not decode is left out and logged, never fatal).
// Store.Snapshot (one read of everything) remains for tools and tests; no
// hot path calls it.
//
// Snapshot.Pods is a []*corev1.Pod pointing at the cache's decoded pods
// (merged with their status: a status report makes a new merged pod, never
// changes one), handed as is to reconciler.Observed, the API and DNS, so
// every reader must treat them as read only and DeepCopy to change one. At
// 30,000 pods a status report costs the next Snapshot one copy of the
// pointer slice (240 kB) with the changed pods' pointers replaced, and no
// sort: the order is kept while no pod comes or goes
// (BenchmarkCacheSnapshot30kPods_afterOneStatusChange: 0.5 ms and 242 KiB
// per snapshot, median of 5, from 159 ms and 35 MiB when it copied the
// pods themselves, corev1.Pod being 1,240 bytes). Pods that came or went
// (up to an eighth of them) are sorted alone and merged into the kept
// order (BenchmarkCacheSnapshot30kPods_afterOnePodAdded: 2.7 ms, from
// about 110 ms for a sort of every key); more re-sort everything.
//
// # Leaders under partitions
//
// A leadership ends, for its replica, when its session may have expired in
// etcd, not only when etcd says it has: Leadership renews its session's
// lease itself every fifth of the TTL (besides concurrency.Session's
// keepalive) and keeps a deadline, the send time of the last renewal etcd
// confirmed plus the TTL, before which etcd cannot have expired the
// lease. When the deadline passes unconfirmed (its etcd member in the
// minority of a partition, every member out of reach) Done closes and
// Apply refuses with ErrNotLeader at once, so the replica stops acting
// before another can be elected (TestLeadership_minorityStopsWithinTTL:
// about 1.8 s after the quorum went, TTL 2 s). clientv3's own keepalive
// channel would close only a TTL after the last answer it received, up
// to half a second late. Every fenced transaction asks for a member with a
// raft leader (clientv3.WithRequireLeader), waits no longer than the
// deadline, and is sent again after a transient refusal (Transient: no
// leader, leader changed, a member unreachable): the loss of one member of
// three is no failed write (TestLeadership_survivesLossOfOneMember). A
// write that reaches etcd after the leadership's election key was deleted
// still fails its compare, which etcd checks when it applies it; each
// transaction also puts LeaderStampKey, so a test can check from etcd's
// history that no write of a leadership follows the deletion of its key.
//
// # Members
//
// EmbeddedConfig with a PeerURL is a member of a cluster of several
// (server/ha.go joins them): AddLearner adds a member as a raft learner
// and returns its initial cluster, Promote makes it a voter once caught
// up, RemoveMember removes one, and HealthChecker reports which members a
// process reaches and whether they have a quorum (ClusterHealth.Message
// says what it means for users). DialMembers dials every member and keeps
// the list current.
//
// # Events
//
// A Recorder per source (an agent: its node's name; servers: "-") writes
// events as Kubernetes' event recorder does, without ever blocking its
// caller: Eventf puts the event in a buffer (Buffer, default 1000; beyond
// it the event is dropped and counted) and Run writes them one at a time.
// A repeat of an event written within Window (default 10 min) with the
// same object, type, reason and message is not a new key: the stored
// event's count and lastTime grow (Kubernetes' correlator). Each object's
// events of one reason go through a token bucket (Burst 25, then one per
// Refill, 5 min: Kubernetes' spam filter), so a flapping probe does not
// flood etcd nor silence its pod's other events. Every write is under an
// etcd lease of TTL (default 1 h) plus a twentieth, shared by the writes
// of that twentieth (the Kubernetes API server's lease manager does the
// same), so an event lives 1 h to 1 h 3 min after its last write. A
// source keeps at most Max events (default 1000): the write of a new one
// deletes, in the same transaction, the oldest by last write. The bound
// counts what the recorder wrote and what it listed at start (a restarted
// agent's events); servers share "-", and a new leader's recorder does not
// count events another server wrote after it started: those go with their
// TTL. Event IDs are the object's name and the time in hexadecimal
// nanoseconds. Store.Events reads every source's events, filtered by
// namespace (that of the object; "default" for a Node's), kind and name,
// oldest first by lastTime, with Limit keeping the newest. The Cache does
// not serve events: they are read when asked for. Metrics:
// bosun_events_recorded_total{outcome}, bosun_events_dropped_total{reason},
// bosun_events_trimmed_total, bosun_events_stored and
// bosun_events_write_duration_seconds, each with recorder="agent" or
// "server".
//
// # Writing
//
// Leadership.Apply cuts a plan into transactions of at most 120 etcd
// operations (etcd's --max-txn-ops is 128 by default) and 1 MiB, in
// order, each fenced on the election key. They are sent one after the
// other: the order between the groups a plan returns (a ConfigMap before
// the pods that mount it) is kept.
package store
