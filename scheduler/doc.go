// Package scheduler places pods onto nodes. It is pure: Schedule is a function of
// the nodes and pods it is given, does no I/O, reads no clock and uses no randomness,
// so the same input always yields the same bindings.
//
// The pipeline for each unbound pod, in the order given, mirrors kube-scheduler:
//
//	nodes --filter--> feasible nodes --score--> best node --account--> next pod
//
// Filter drops nodes that are marked unschedulable, that lack a label the pod's
// nodeSelector asks for, or whose free cpu or memory (allocatable minus the requests
// of the pods already on the node, including those placed earlier in the same call)
// is below the pod's requests.
//
// Score is the sum of two terms, each in [0, 1]:
//   - least-allocated: the mean of the free cpu fraction and the free memory
//     fraction the node would have after the placement, so work spreads towards
//     emptier nodes;
//   - spreading: (max - count) / max, where count is the number of pods of the same
//     Owner on the node and max the largest such count on any node, so replicas of
//     one Deployment land on different nodes (1 when the owner has no pods yet or
//     the pod has no owner).
//
// As in Kubernetes, the least-allocated term counts a pod that requests no cpu as
// requesting 100m, and one that requests no memory as requesting 200Mi, so that
// request-less pods still spread; the filter uses the real requests. Ties go to the node whose name sorts
// first.
//
// A pod that fits nowhere gets a reason in the format kube-scheduler uses, for
// example "0/3 nodes are available: 1 insufficient cpu, 2 node(s) didn't match node
// selector". A node can contribute to several reasons (insufficient cpu and memory).
//
// Pods with NodeName set are already bound: their requests count as used on that
// node (and towards its owner's spread), they are not placed again and do not appear
// in the Result. Pods bound to a node that is not in the node list are ignored.
package scheduler
