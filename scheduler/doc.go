// Package scheduler places pods onto nodes. It is pure: Schedule is a function of
// the nodes and pods it is given, does no I/O, reads no clock and uses no randomness,
// so the same input always yields the same bindings. The planner (reconciler.Plan)
// and bosun plan's dry run (preview) both call it, and both read nodes and pods
// through NodeOf and PodOf: there is one model of every rule.
//
// The pipeline for each unbound pod, in the order given, mirrors kube-scheduler:
//
//	nodes --filter--> feasible nodes --score--> best node --account--> next pod
//
// # Filters
//
// A node is feasible when it passes every filter, tried in kube-scheduler's order;
// the first that fails is the node's reason:
//
//  1. NodeUnschedulable: the node is not cordoned, unless the pod tolerates
//     node.kubernetes.io/unschedulable:NoSchedule, as daemon pods do
//     (kube-scheduler's rule; an {operator: Exists} toleration counts). Beyond
//     kube-scheduler: a draining node (Node.Draining) takes only DaemonSets'
//     pods (Pod.Daemon), whatever a pod tolerates, so that a drain ends; a
//     node that is gone but still within its grace period (Node.Closed) takes
//     no pod at all.
//  2. TaintToleration: every NoSchedule and NoExecute taint is tolerated (see
//     Tolerates; Lt and Gt tolerate nothing). A NoExecute toleration with
//     tolerationSeconds still admits the pod; eviction is the planner's.
//  3. NodeAffinity: the node carries every nodeSelector label, and matches the
//     required node affinity: nodeSelectorTerms ORed, each term's
//     matchExpressions (In, NotIn, Exists, DoesNotExist, Gt, Lt on node labels)
//     and matchFields (metadata.name) ANDed, as
//     k8s.io/component-helpers/scheduling/corev1/nodeaffinity evaluates them.
//  4. NodePorts (ports.go): none of the pod's host ports (containers' hostPort,
//     every container port of a hostNetwork pod; init containers included)
//     is taken on the node by a pod already there: the same port and protocol
//     on the same hostIP, or on any when either side binds every address
//     (hostIP unset or 0.0.0.0). Reason: "node(s) didn't have free ports for
//     the requested pod ports". Beyond kube-scheduler: the ports bosun itself
//     listens on at the node (Node.ReservedPorts, from the Node's
//     bosun.dev/reserved-host-ports annotation, which its agent writes: the
//     ingress proxy, the DNS on the pods' nameserver address and
//     --dns-listen, the API, etcd...) are taken from the start by the same
//     rule, so a pod never gets one (portmap's DNAT would take the
//     listener's traffic); a node whose annotation is unreadable
//     (Node.ReservedPortsErr, which says why) takes no pod with a host port
//     at all, with its own reason: "node(s) had an unreadable
//     bosun.dev/reserved-host-ports annotation". The annotation is
//     PROTOCOL/ADDRESS:PORT=HOLDER entries, comma-separated, e.g.
//     "TCP/0.0.0.0:80=ingress,UDP/10.88.1.1:53=dns", at most
//     MaxReservedPorts (256) of them in MaxReservedPortsBytes (8 KiB); a
//     larger value is unreadable (reserved.go). Ports are normalized once
//     per pod and node, not at every comparison.
//  5. NodeResourcesFit: the node's free pods (MaxPods; 0 is no limit), cpu and
//     memory (allocatable minus the requests of the pods already on it, those
//     placed earlier in the same call included) hold the pod's requests. Every
//     resource short counts.
//  6. Volumes (volumes.go), for pods that use PersistentVolumeClaims: no
//     other pod uses one of its ReadWriteOncePod claims; every bound claim
//     lives on the node ("node(s) had volume node affinity conflict"; a
//     claim bound to a node that is gone adds to the reason where its data
//     is); and the unbound ones fit the node's free volume capacity
//     (VolumeCapacity, bosun.dev/local-storage, less VolumesUsed and the
//     claims bound earlier in the same call: "node(s) did not have enough
//     free storage", kube-scheduler's words). Placing the pod binds its unbound claims to
//     the node, so two pods sharing a ReadWriteOnce claim share a node.
//  7. PodTopologySpread, for each DoNotSchedule constraint: the node has the
//     topology label, and placing the pod keeps its domain within maxSkew of the
//     domain with the fewest selected pods. Domains are the label's values on the
//     eligible nodes (by default those matching the pod's nodeSelector and
//     required node affinity, whatever their taints: nodeAffinityPolicy and
//     nodeTaintsPolicy change that); pods count when they are in the pod's
//     namespace and match labelSelector plus matchLabelKeys (the pod's own
//     values). With fewer eligible domains than minDomains the minimum is 0.
//  8. InterPodAffinity: every required pod affinity term has a selected pod in
//     the node's domain (unless no pod anywhere matches and the pod matches its
//     own terms: the first of a self-affine group goes anywhere); no required
//     anti-affinity term has one; and no placed pod's required anti-affinity term
//     selects this pod from the node's domain. A term selects pods of its
//     namespaces (default: the pod's own) by labelSelector (unset: none) plus
//     matchLabelKeys (In) and mismatchLabelKeys (NotIn) with the pod's own
//     values; its domain is the node's value of topologyKey (a node without
//     that label is in no domain).
//
// Pods placed earlier in the same call count for every filter and score, so
// the replicas of one Deployment created in one plan see each other.
//
// # Scores
//
// The feasible node with the highest score wins; ties go to the node whose
// name sorts first. The score is a sum of terms, each normalized to [0, 1]
// over the feasible nodes and weighted as kube-scheduler weighs its plugins:
//   - least-allocated (1): the mean of the free cpu fraction and the free memory
//     fraction the node would have after the placement, so work spreads towards
//     emptier nodes; a pod that requests no cpu counts as 100m, no memory as
//     200Mi, as kube-scheduler's non-zero requests do (the filter uses the real
//     requests);
//   - owner spreading (1): (max - count) / max, where count is the number of pods
//     of the same Owner on the node and max the largest such count on any node,
//     so replicas of one Deployment land on different nodes (1 when the owner
//     has no pods yet or the pod has no owner);
//   - PreferNoSchedule taints (3): fewer untolerated ones is better;
//   - preferred node affinity (2): the sum of the weights (1-100) of the
//     matching terms, over the largest sum;
//   - preferred pod affinity and anti-affinity (2): each selected pod in the
//     node's domain adds the term's weight (anti-affinity subtracts it), and
//     placed pods' preferred terms that select this pod count the same way;
//     scaled between the lowest and highest sums;
//   - ScheduleAnyway spread constraints (2): fewer selected pods in the node's
//     domains is better; a node without the topology label scores 0.
//
// Terms that are equal on every node are left out, so a pod without placement
// rules is placed by the first two alone.
//
// # Reasons
//
// A pod that fits nowhere gets a reason in kube-scheduler's format and words:
// how many nodes failed each filter, sorted, for example
//
//	0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 node(s) didn't match pod anti-affinity rules
//
// The texts: "node(s) were unschedulable", "node(s) had untolerated taint
// {key: value}", "node(s) didn't match node selector" (nodeSelector only) or
// "node(s) didn't match Pod's node affinity/selector", "Too many pods",
// "insufficient cpu", "insufficient memory", "node(s) didn't match pod
// topology spread constraints" (with " (missing required label)"), "node(s)
// didn't match pod affinity rules", "node(s) didn't match pod anti-affinity
// rules", "node(s) didn't satisfy existing pods anti-affinity rules".
//
// Pods with NodeName set are already bound: their requests count as used on that
// node (and towards its owner's spread, its pod count and the inter-pod rules),
// they are not placed again and do not appear in the Result. Pods bound to a node
// that is not in the node list are ignored.
//
// # Cost
//
// The filter and the first two scores touch parallel slices only. Inter-pod
// state is kept only when some pod has pod (anti-)affinity or spread
// constraints: placed pods are grouped by namespace and labels (the replicas
// of one template are one group), a term's selector is matched once per group,
// and per-domain marks are stamped with the pod being placed instead of being
// cleared. BenchmarkSchedule10kPods1kNodes and
// BenchmarkSchedule10kPods1kNodesAntiAffinitySpread measure both paths.
package scheduler
