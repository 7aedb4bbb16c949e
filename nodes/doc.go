// Package nodes is bosun's node agent: it does kubelet's job on one machine.
//
// An Agent registers its node in the store under a lease (capacity, labels,
// addresses, Ready), watches the pods bound to the node and runs them on
// containerd, writing each pod's status back. The node object carries what
// the scheduler places against: Allocatable is Capacity (cpu, memory, and
// MaxPods pods) less SystemReserved, and Spec.Taints are Config.Taints, the
// NoExecute ones stamped with TimeAdded when the agent first registers (the
// planner evicts from that time on; the agent itself admits whatever is
// bound to it). One goroutine per pod (a pod
// worker) owns that pod's state; Run's loop feeds it the pod as bound in the
// store and waits for every worker on shutdown.
//
//	store pods/<ns>/<name> --watch--> Run loop --set(pod)--> pod worker
//	                                                         |  netns + CNI bridge (eth0, IP)
//	                                                         |  containers joined to the netns
//	store podstatus/<node>/<ns>/<name> <--PutPodStatus (on change)--+  exits, restarts, backoff
//
// A pod gets a named network namespace (NetnsDir/bosun-<ns>-<pod>-<uid8>)
// attached to a Linux bridge through CNI (bridge + host-local IPAM), and a
// shared /etc/hosts and /etc/resolv.conf bind-mounted read-only into each of
// its containers, so containers of a pod reach each other on localhost.
// Host networking (hostnet.go), only with Config.AllowHostNetwork (the
// agent flag --allow-host-network; without it such a pod stays Pending
// saying so): a hostNetwork pod gets no namespace and no CNI attachment,
// its containers join the host's network and UTS namespaces, its IP
// (status.podIP, POD_IP, probes, Service endpoints) is Config.NodeIP, its
// /etc/hosts the node's (Config.HostsFile) plus hostAliases, and
// dnsPolicy ClusterFirst means Default unless it is
// ClusterFirstWithHostNet; an adopted one is kept while the node's IP is
// the same. A hostPort of another pod is a mapping <node IP or
// hostIP>:hostPort -> <pod IP>:containerPort made by the CNI portmap
// plugin, chained after the bridge when its binary is in CNIBinDirs and
// given the mappings through go-cni's portMappings capability, as
// containerd's CRI plugin does; the mappings of each attachment are kept
// in CNIConfDir/portmaps (written atomically; one that cannot be read is
// logged and the attachment removed all the same) so the CNI DEL of the
// pod (a restarted agent's too) removes them. A run holds its host ports
// (a hostNetwork pod's container ports too) from before its network is
// set up until it is torn down: a pod whose port another live run holds
// (one bound by nodeName, or a replacement while the old pod terminates)
// stays Pending with "HostPort conflict" naming the holder, and starts once
// it is gone, as kubelet admits pods. An agent restarted without the flag
// stops the hostNetwork and hostPort runs it finds. The ports bosun itself
// listens on at the node (reserved.go: Config.ReservedPorts, which
// cmd/bosun fills from its listen flags: ingress, API, webhook, etcd,
// --dns-listen, the agent's --listen, pprof; and with Config.PodDNS the
// pods' nameserver, DNSServer:53 UDP and TCP) are never a pod's: portmap's
// DNAT runs before the local socket, so such a pod would take bosun's
// traffic. Every registration writes them on the Node, annotation
// scheduler.AnnotationReservedHostPorts ("TCP/0.0.0.0:80=ingress,
// UDP/10.88.1.1:53=pod-dns,..."; a flag changed across a restart changes
// it), for the scheduler to count as taken; and a pod bound here with one
// anyway (an older leader's, or one pinned by nodeName) is refused for
// good, as kubelet's admission refuses a pod: that listener never leaves,
// so the pod fails at once (phase Failed, reason HostPortReserved,
// message "Pod was rejected: port 80/TCP is bosun's ingress listener
// (--ingress-listen) on this node ...", a Warning event of that reason),
// before anything of it is set up (volumes, network, pod directory), and
// its owner replaces it with a pod the scheduler keeps off this node. An
// agent restarted with a listener on a port that a running pod it finds
// holds (the flag is new, or moved) admits that pod again, as kubelet
// does at start: it stops it (the listener gets its traffic back: a
// bridge pod's portmap DNAT would take it, a hostNetwork pod would keep
// the socket) and the pod fails the same way. Whenever it builds its
// bridge network the agent installs the nftables table
// bosun-localnet-<bridge> (localnet.go), which drops what arrives on the
// bridge for 127.0.0.0/8 unless its connection was DNATed: portmap sets
// route_localnet on the bridge, which without it lets a pod reach the
// node's loopback services (CVE-2020-8558). bosun reset and bosun agent
// --cleanup remove it (CleanupLocalnet), and the portmap rules of pods
// whose networks were never torn down (CleanupHostPorts,
// hostportclean.go): left behind, one would capture its port on the whole
// machine.
// Each node's pod subnet is given by the leader (store.NodeSubnet,
// package podcidr): Run registers the node not Ready and tainted
// node.kubernetes.io/network-unavailable, with the subnet it asks for in
// Spec.PodCIDR (Config.PodCIDR, --pod-cidr; empty: any), waits for the
// leader's record (logging every 5 s that it waits), and only then builds
// its pod network, publishes the subnet in Spec.PodCIDR(s) and becomes
// Ready; a restarted agent gets its record back. A refusal (a subnet that
// overlaps another node's, names it) stops Run before anything on the
// machine changes (ErrSubnetRefused), and so does, later, a refusal or the
// deletion of the record (bosun node delete) while it runs. An agent that
// asks for a subnet while no leader is elected (the package's tests)
// checks it itself against the records and the nodes registered from the
// same machine (podCIDRCheck: two nodes on one machine with overlapping
// subnets would give two pods one IP) and goes on.
// resolv.conf follows dnsPolicy: ClusterFirst (the cluster's nameserver and
// search path, ndots:5), Default (the node's ResolvConf) or None, with
// dnsConfig merged in; /etc/hosts carries the pod's hostname (spec.hostname
// or its name; with spec.subdomain, preceded by the fully qualified
// <hostname>.<subdomain>.<ns>.svc.<domain>, as kubelet writes it) and
// hostAliases; the containers' hostname is that hostname. Each run of a container is a fresh
// containerd container with its own snapshot; its stdout and stderr go to
// StateDir/logs/<ns>_<pod>/<container>.log (LogPath), the previous run's to
// <container>.log.1.
//
// What a pod is given (envsource.go, projection.go and security.go are
// pure; volumes.go and contents.go do the I/O), as kubelet and containerd's
// CRI plugin do:
//
//   - Environment: POD_NAME, POD_NAMESPACE, POD_IP, then envFrom (ConfigMap
//     and Secret keys, with prefix), then env with $(VAR) expansion and
//     valueFrom: fieldRef (metadata.name, namespace, uid, labels['k'],
//     annotations['k'], spec.nodeName, spec.serviceAccountName,
//     status.podIP(s), status.hostIP(s)), resourceFieldRef (limits and
//     requests of cpu, memory and ephemeral-storage in units of the divisor;
//     an unset limit is the node's allocatable), configMapKeyRef and
//     secretKeyRef. ConfigMaps and Secrets are read from the store at each
//     start; a missing one (or key) that is not optional leaves the
//     container waiting with CreateContainerConfigError naming the object
//     and key, and it is tried again with the restart backoff.
//   - Volumes live under StateDir/pods/<uid>/volumes/<name> and go with the
//     pod: emptyDir (a directory of mode 0777, or with medium Memory a tmpfs
//     of sizeLimit), configMap, secret, downwardAPI and projected (files
//     with items, mode, defaultMode 0644 and optional; secret and projected
//     volumes are tmpfs so secret files never touch the disk; all four are
//     mounted read-only), and hostPath only under Config.AllowHostPath
//     (after resolving symlinks) with its type checked. fsGroup makes the
//     pod's volumes group-owned with setgid directories. A volume that cannot
//     be set up keeps the pod Pending (ContainerCreating) with the reason in
//     the pod's status message. volumeMounts honour readOnly and subPath: a
//     subPath is opened inside its volume without following links out
//     (filepath-securejoin) and that handle is bind-mounted under
//     pods/<uid>/volume-subpaths, so the container gets what was checked.
//     Removing a pod unmounts everything under its directory, and removes
//     nothing while a mount is left there. A teardown cut short by the
//     agent stopping after the pod's containers were deleted leaves a pod
//     directory no container belongs to: the next agent, before any worker
//     runs, finishes it (leftovers.go): the network the directory's
//     sandbox file names, then the directory and its mounts (a claim's
//     volume mounted there would otherwise never be deleted).
//   - Local persistent volumes (claims.go), like k3s's local-path
//     provisioner: a persistentVolumeClaim volume is the directory
//     StateDir/volumes/<namespace>/<claim>-<uid> (mode 0777, or owned by
//     fsGroup as an emptyDir is), created when the first pod using it
//     starts and bind-mounted at the pod's volume path, so it survives pod
//     restarts and deletion, agent restarts, rollouts and server failovers.
//     The claim must be bound to this node (the leader binds it with its
//     first pod); a pod whose claim is missing, unbound or bound elsewhere
//     stays ContainerCreating, saying so. Before creating a directory the
//     agent writes its record, store.VolumeRecord under
//     volumes/<node>/<namespace>/<volume> (a node may write only its own:
//     store.AllowNode), with the claim's size and reclaim policy, and says
//     Made once the directory exists: a directory missing while its record
//     says Made (data disk not mounted, --data-dir changed) is never made
//     again, empty; the pod waits, saying "volume directory missing". A
//     record is written only while the claim's key is at the revision the
//     agent read it at (store.PutVolumeIfClaim; the claim is read again
//     otherwise), so it never says a reclaim policy the claim no longer
//     does. The etcd calls hold a per-volume lock, never the lock the
//     agent's loop and teardowns take. A ReadWriteOncePod claim is not
//     mounted while another run of the node has it. On every resync the
//     agent goes over its records: a volume whose claim is gone (or now has
//     another volume: made again under its name) and said
//     bosun.dev/reclaim-policy: Delete (the leader deletes a claim only
//     once the record says the claim's policy) is deleted, directory then
//     record, once no pod uses it: no run that took it is still there
//     (tracked per volume, not per claim name, from before its directory is
//     made to the run's teardown) and no mount in /proc/self/mountinfo has
//     the directory as its source (adopted pods, subPaths); one that said
//     Retain (the default) stays, Released, and the leader binds a claim of
//     the same namespace and name to it again. The data lives on one node
//     only: a pod that moves keeps its data only if it comes back to that
//     node.
//     Config.VolumeCapacity (--volume-capacity; default the size of
//     StateDir's filesystem, 0 on the flag for no limit) is published as the
//     node's bosun.dev/local-storage capacity. Metrics: bosun_agent_volumes
//     by state, bosun_agent_volume_mounts_total,
//     bosun_agent_volume_deletions_total, bosun_agent_volume_errors_total by
//     op, bosun_agent_volume_collect_duration_seconds.
//   - Security: the container's securityContext wins over the pod's.
//     runAsUser/runAsGroup (resolved against the image's /etc/passwd),
//     supplementalGroups and fsGroup as extra groups (with the image's
//     /etc/group ones unless supplementalGroupsPolicy is Strict),
//     runAsNonRoot (an image running as root, or as a non-numeric user,
//     waits with CreateContainerConfigError in kubelet's words),
//     readOnlyRootFilesystem, allowPrivilegeEscalation false (no_new_privs),
//     capabilities add/drop (ALL included) from containerd's default set,
//     privileged only with Config.AllowPrivileged (else
//     CreateContainerConfigError naming --allow-privileged), namespaced
//     sysctls, and seccompProfile RuntimeDefault (the default: containerd's
//     profile) or Unconfined. containerd's masked and read-only /proc paths
//     apply unless privileged.
//   - Termination messages: each container instance gets an empty file
//     (pods/<uid>/containers/<name>/termination-log) at its
//     terminationMessagePath; what it holds (at most 4096 bytes) or, with
//     FallbackToLogsOnError and a failure, the log's tail becomes the
//     message of the terminated state.
//
// Secret values reach only the container (its environment and files): no
// log line, status or error of the agent carries one.
//
// Restarts follow the pod's restartPolicy with kubelet's backoff: the first
// restart is immediate, then RestartBackoff doubling to MaxRestartBackoff,
// reset after a run of 2*MaxRestartBackoff. Status follows kubelet: phase,
// conditions, container states with waiting reasons (ContainerCreating,
// CrashLoopBackOff, ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
// CreateContainerConfigError), last termination and restart counts.
//
// Containers run in kubelet's sequence (sequence.go, pure): init
// containers one at a time, in order, each to completion; a failing one is
// restarted with the restart backoff (pod restartPolicy Always or
// OnFailure) or fails the pod (Never). Sidecars (init containers with
// restartPolicy Always) start in that sequence and the next container waits
// until the sidecar has started (startup probe passed, postStart hook
// returned); they are restarted whenever they exit, count toward
// readiness, and once the app containers of a Never/OnFailure pod are done
// they are stopped, last first, so the pod completes by its app containers.
// Once an app container has been created the pod stays initialized: init
// containers never run again (an app restart, an agent restart). Status
// follows kubelet: initContainerStatuses, the Initialized condition
// (ContainersNotInitialized), PodInitializing, and kubelet's phase rules.
// Deleting a pod stops its app containers (and a running init container)
// together, then its sidecars one at a time, last first, within the grace
// period.
//
// Lifecycle hooks (hooks.go): postStart runs right after the task starts,
// in a goroutine owned by the instance; until it returns the container is
// not started, its probes do not run, and app containers after it wait (as
// kubelet starts them in order). A failing hook kills the container
// (termination reason PostStartHookError, message "FailedPostStartHook:
// ...") and it restarts by its policy. preStop runs before SIGTERM within
// the grace period. Handlers: exec (exit 0 passes), httpGet (any HTTP
// answer passes, as in kubelet), sleep.
//
// When a container's task exits, its exit code and time are written to the
// container's labels (LabelExitCode, LabelFinishedAt) before the task is
// reaped, so that a restarted agent knows how an exited container ended
// (a completed init container stays completed; a completed app container
// of a Never pod stays Succeeded).
//
// Probes follow Kubernetes: readinessProbe, livenessProbe and startupProbe
// with exec (a process in the container's task), httpGet (from the agent to
// podIP:port; 2xx and 3xx pass), tcpSocket and grpc (grpc.health.v1 Check
// of the named service on podIP:port, plaintext or TLS without
// verification; SERVING passes), with Kubernetes' defaults. One difference
// makes pods ready sooner: a readiness probe that has not passed yet is
// retried 50 ms after a failure, doubling up to its period (nextProbe), so
// a container that listens a moment after it starts is ready then, not a
// whole period later.
// Each active probe of a running container instance is one goroutine owned
// by the pod worker (stopped with the instance); it only reports results.
// The worker feeds them to the instance's prober state machine
// (probe.go, pure), which decides readiness, "started" and kills; results
// of an instance that is no longer current are dropped. The startup probe
// gates the others; a failing liveness probe (or a startup probe out of
// budget) stops the container as deletion does (with the probe's
// terminationGracePeriodSeconds when set) and it restarts with the restart
// backoff, its termination reason LivenessProbeFailed (or
// StartupProbeFailed). ContainerStatus.Ready and Started, the pod's
// ContainersReady and Ready conditions ("containers with unready status:
// [web]") and the bosun.dev/Probes condition (every probe's last result)
// derive from it. Status is written only when it changes, so steady probe
// results cost no etcd writes.
//
// Logs are served from the files above by WriteLogs and LogHandler
// (logs.go): whole, tail, previous, or followed across restarts by noticing
// the rotation (a new file at the path) until the pod's log dir goes.
//
// Contract on stopping: when Run's context ends the node is deregistered but
// containers keep running. Every container carries labels (LabelPodUID and
// friends) from which a restarted agent adopts it: same container, same
// netns and IP, no duplicate. Containers of pods no longer bound to the node
// are torn down (before the node registers again: see fencing below): SIGTERM, the pod's grace period, SIGKILL, then the
// container, its snapshot, the CNI attachment (freeing the IP), the netns
// and the pod's status key are removed.
//
// Fencing on the node side (fence.go, agent.go). The leader replaces the
// pods of a node whose lease has been gone for its --node-grace-period: it
// deletes them or binds them elsewhere. A node that was cut off from etcd
// meanwhile (a partition, a dead link) and comes back, or whose agent was
// down, must not serve beside those replacements. So a node registers its
// lease (reports Ready) only after a fence: it lists the pods bound to it
// at a revision read after it reached etcd again (a linearizable read, and
// the node's cache brought up to that revision), decides without I/O which
// local pod instances are no longer bound (planFence: deleted, bound to
// another node, or replaced by a new UID of the same name), and waits until
// their workers have torn them down: preStop and SIGTERM within the pod's
// grace period, SIGKILL, network and status removed. Pods still bound keep
// running untouched (same containers, no restart). Run fences at start
// (after adopting what a previous agent left) and whenever the lease is
// lost, which the agent learns by itself when etcd has not answered its
// keep-alives for the lease TTL; a registration that fails sends it back to
// the fence's list. The teardown waits on no network: the fence starts once
// etcd answers, and a stopping pod needs only its own node. Metrics:
// bosun_agent_lease_losses_total, bosun_agent_fenced_pods_total,
// bosun_agent_fence_duration_seconds, bosun_agent_fencing.
//
// The pods' metrics (metrics.go; no pod name in any label):
// bosun_agent_pod_starts_total and bosun_agent_pod_start_duration_seconds
// (from the agent taking a pod to its status first written out of Pending;
// adopted pods are not counted), bosun_agent_container_starts_total,
// bosun_agent_container_restarts_total,
// bosun_agent_container_start_failures_total{reason} (the waiting reason),
// bosun_agent_probe_failures_total{probe}, bosun_agent_image_pulls_total{result}
// and bosun_agent_image_pull_duration_seconds. `bosun agent --listen` serves
// them at /metrics, a server with --agent on its API.
//
// While a node stays cut off, by default its pods keep running, as
// kubelet's do: the agent cannot tell its own partition from an outage of
// etcd or of the servers, and stopping pods then would turn a
// control-plane outage (or, on a single machine where nothing can replace
// them, any etcd restart) into an outage of every application. During a
// partition longer than the grace period a Deployment can thus run its
// replicas on the reachable nodes plus the stale copies on the cut-off
// node (DNS and Service VIPs name only the pods bound in the store); the
// fence removes the copies when the node returns, before it rejoins.
// Clusters that prefer losing the cut-off node's capacity to ever running
// more than replicas + maxSurge copies set Config.CutOffStopAfter (`bosun
// agent --cut-off-stop-after`) to the servers' --node-grace-period: once
// the lease has been lost that long (cutOffStopDue, pure), the node stops
// every pod as if none were bound (status removal waits for etcd; the
// containers stop at once), and when etcd answers again the fence decides
// from what is bound then; pods still bound start again. The agent reads
// the period from its flag rather than from the servers: a node cut off
// cannot read it, and one that read it before would need it kept fresh.
//
// A containerd restart under a running agent changes nothing: a task's
// wait that breaks (containerd went away, its shims did not) is not an
// exit; the worker waits on the task again once containerd answers, so the
// same containers run on, with the same status and restart counts.
//
// Real and simulated nodes (runner.go, simulate.go) share Run's loop:
// registration under a lease and again when the lease is lost, the watch
// of the pods bound to the node, one worker per pod key, deregistration.
// Only the podRunner differs: the containerd one (a podWorker per pod, as
// above) or a simulated one. A Simulation runs N simulated nodes in one
// process on one etcd client, like Kubernetes' kubemark hollow nodes, for
// scale tests (`bosun agent --simulate N`): nodes <prefix>-0001... labelled
// bosun.dev/simulated=true with containerRuntimeVersion simulated://bosun,
// each with the i-th /24 of SimConfig.PodCIDRs (default 10.192.0.0/10) and
// its own lease, registered at most Concurrency (32) at a time. A pod bound
// to one is reported, through the same buildStatus and PutPodStatus as a
// real pod, ContainerCreating and then, after StartDelay, Running with
// every container started and Ready (init containers completed, probes
// passing) and an address from the node's /24; a pod that runs to
// completion (restartPolicy Never or OnFailure: Jobs' pods) Succeeded. A
// pod that goes has its status deleted and its address freed. No
// containerd, CNI or state directory is touched, and a simulated pod whose
// status is settled has no goroutine or timer: a worker starts a goroutine
// only while it has something to write.
//
// The decisions (restart, backoff, the container sequence, phase, status,
// process arguments, environment, files, security settings) are pure
// functions in podstate.go, sequence.go, probe.go, envsource.go,
// projection.go, podfiles.go and security.go; the I/O lives in runtime.go
// (containerd), network.go (netns, CNI), volumes.go, contents.go,
// probe_runner.go, worker.go, probe_worker.go and hooks.go; simulate.go
// writes simulated pods' statuses.
package nodes
