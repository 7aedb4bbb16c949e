// Package pki is bosun's cluster certificate authority: the CA that the
// first server creates in its data directory, the certificates it issues to
// etcd, to the servers' clients and to nodes, and the join token with which
// a node obtains its own.
//
// # Identities
//
// A certificate's Common Name is who its holder is, for etcd (which takes
// a client certificate's CN as the user name when it checks permissions)
// and for bosun's own TLS endpoints alike:
//
//	root          a bosun server: etcd's root user, and the only client a
//	              node's log server answers
//	node:<name>   the agent of node <name>: etcd lets it write its own node
//	              key and its own pods' statuses, and nothing else
//
// Keys are ECDSA P-256. The CA is valid for ten years, the certificates it
// issues for one year (a node's is renewed when it has less than a third
// left, at the agent's start).
//
// # Join tokens
//
// A join token is "bosun1." + the hex SHA-256 of the CA certificate (its
// DER) + "." + a 32-byte random secret in hex, like k3s's. The first half
// lets a joining node check that the server it talks to holds the cluster's
// CA before it sends the secret; the secret proves to the server that the
// node was given the token. The server compares secrets in constant time.
package pki
