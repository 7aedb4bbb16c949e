// Package podnet routes pod traffic between nodes: every agent makes its
// machine's kernel carry a route to each other node's pod subnet, and
// masquerades its pods' traffic that leaves the cluster. It does flannel's
// job with vishvananda/netlink and google/nftables.
//
//	etcd: nodes/ (InternalIP), nodesubnets/ (the leader's records), cluster/network (CIDR, backend)
//	   │ watch + resync (Run)
//	   v
//	Decide (pure: routes, kept subnets, no-masquerade destinations) ─> Syncer.Sync ─> kernel
//
// Backends (cluster-wide: `bosun server --backend`, stored in
// cluster/network; agents follow it):
//
//   - host-gw (default): `ip route replace <node subnet> via <node IP>`.
//     Every node must be on one L2 segment with the others: a next hop
//     that is reached through a router is refused with an error naming the
//     node and suggesting --backend vxlan (the router does not know the pod
//     subnets).
//   - vxlan: a device bosun.vxlan (VNI 1, UDP 8472, the node's IP as local
//     address, learning off, MTU of its parent less 50, its MAC derived
//     from the node's IP so every node knows every other's) holding the
//     node's VTEP address (its subnet's network address, x.y.z.0/32). Per
//     remote node: a route `<subnet> via <its VTEP address> dev bosun.vxlan
//     onlink`, a permanent neighbour entry (VTEP address -> its MAC) and
//     an FDB entry (MAC -> its node IP), as flannel's vxlan backend lays
//     them out. Back on host-gw, the device is deleted.
//
// Ownership: routes carry protocol 98 (RouteProtocol) and a realm derived
// from the agent's pod bridge, and a Sync removes only routes with both:
// several agents on one machine (single-machine tests) never remove each
// other's, and a route of another owner to the same subnet (a connected
// route, an operator's) is never replaced: that is an error. Nodes whose
// address is one of this machine's (several nodes on one machine) need no
// route: their bridges are here.
//
// What goes, what stays: a node deleted (bosun node delete frees its
// subnet record) loses its route, neighbour and FDB entries at the next
// Sync; a node whose registration merely lapsed keeps its route (its pods
// may still be serving; Run remembers its last address, and after an
// agent restart an installed route to a recorded subnet is kept as it
// is).
//
// Masquerade: the table `ip bosun-podnet-<bridge>` (TableName), a nat
// postrouting chain at srcnat priority that returns for a source outside
// this node's subnet and for a destination in the cluster CIDR or any
// node's subnet, and masquerades the rest. It is rewritten whole in one
// batch, only when its content changes (or it is missing). The CNI
// bridge's own ipMasq stays off (nodes/network.go). Sync also turns on
// net.ipv4.ip_forward.
//
// Run stops on ctx and leaves the kernel as it is (pods keep reaching
// other nodes while an agent restarts); `bosun agent --cleanup` removes
// everything (CleanupNode). Metrics: bosun_podnet_routes,
// bosun_podnet_syncs_total{result}, bosun_podnet_sync_duration_seconds.
//
// Cost (BenchmarkPodToPod: Go TCP between two pods' namespaces, hosts
// joined by a bridge on one kernel, so veths, not NICs; medians of 3 on a
// 2-core VM shared with other work, noisy: go test -run '^$' -bench
// PodToPod -benchtime 2s -count 3 ./podnet): throughput with 1 MiB
// writes, same node 425 MB/s, host-gw 486 MB/s (no measurable overhead:
// one more forwarding hop), vxlan 287 MB/s (-33%: encapsulation, MTU less
// 50); a 1-byte round trip 64 µs, 55 µs and 189 µs. A Sync of nothing to
// change takes about a millisecond; with routes to add, 20 ms.
//
// Tests build hosts from network namespaces (bosunpn*, 10.241.0.0/16 for
// hosts, 10.242.0.0/16 for pods): three hosts on one bridge for host-gw
// (routes, idempotence, real TCP between pods, masquerade to the outside,
// a lapsed node kept, a deleted one removed, a foreign route untouched),
// and two hosts behind a router where host-gw fails with its error and
// vxlan carries TCP between the pods.
package podnet
