// Package join lets a machine join the cluster as a node, the way k3s's
// agents do: `bosun server` prints a join token, and `bosun agent --server
// URL --token TOKEN` trades it for the node's own client certificate.
//
// The agent first checks the server: the server's TLS chain must hold the
// cluster CA whose SHA-256 the token names (so a man in the middle never
// sees the secret), and the server's certificate must chain to it. Then it
// sends its node name, a certificate request (its private key never leaves
// the machine) and the token's secret. The server compares the secret in
// constant time, refuses a client address that failed too often
// (bosun_join_requests_total{result}), creates the node's etcd user and
// role (store.AllowNode: read the state, write only its own node and pod
// statuses), and signs the request as "node:<name>", whatever the request
// itself asked for. The node keeps its certificate, the CA and etcd's
// endpoints in its state directory (0600) and uses them from then on,
// without the token, until the certificate nears its end.
//
// With that certificate the node talks to etcd over mutual TLS as its own
// etcd user, and serves its pods' logs only to the servers (Common Name
// root), which check that the node they dial is the one they meant.
//
// Servers join too (ServerPath, JoinServer), with the server token, which
// the first server prints once and keeps in <data-dir>/pki/server-token:
// a joining server's etcd member is added as a learner of the servers'
// etcd (store.AddLearner) and it receives what a server keeps (the CA with
// its key, both tokens, the keys of Secrets at rest) and the initial
// cluster its member starts with; see package server. Nodes that join
// through a server whose etcd has peers get every member's client URL.
package join
