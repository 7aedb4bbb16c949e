// Package podcidr decides which pod subnet each node gets: the leader's
// node IPAM, as kube-controller-manager's range allocator does it for
// Kubernetes.
//
// The cluster's pod range (--cluster-cidr, default 10.88.0.0/16) is cut
// into subnets of --node-cidr-mask-size bits (default /24). Plan takes the
// nodes the leader knows (registered or not, what each asks for, what is
// recorded for each) and returns the records to write:
//
//	nodes/<node> (the agent's request: Spec.PodCIDR, empty = any) ─┐
//	nodesubnets/<node> (the records) ──────────────────────────────┼─> Plan ─> Assign / Refuse / Clear / Drop ─> nodesubnets/<node>
//	--cluster-cidr, --node-cidr-mask-size ─────────────────────────┘
//
// The contract:
//   - A recorded subnet belongs to its node for as long as the record
//     exists, registered or not (a node whose lease lapsed keeps it); Plan
//     never drops such a record and never gives an overlapping subnet to
//     another node. Only a deletion of the node (bosun node delete) frees
//     it.
//   - A node that asks for nothing gets the first free subnet of the
//     cluster CIDR, lowest address first; one that overlaps any record (a
//     hand-given subnet of any size, inside the range or not) is not free.
//   - A node that asks for a subnet (--pod-cidr) gets exactly it when it
//     overlaps no other node's; inside the cluster CIDR or not. Otherwise
//     it is refused, and the refusal names the other node.
//   - A node with a record that asks for another subnet is refused (its
//     pods hold addresses of the recorded one).
//   - When the range is exhausted a node is refused with that reason.
//
// Plan is pure: no clock, no I/O, and nodes are taken in name order, so
// the same input gives the same records. server's leader applies it on
// every change of nodes/ and nodesubnets/.
package podcidr
