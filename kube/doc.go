// Package kube holds helpers over the Kubernetes API types bosun stores
// (k8s.io/api): the one definition of when a pod is ready or finished, when
// a node is ready, and which object controls another. Every package that asks
// these questions (store, nodes, dns, api, reconciler, preview, server) asks
// them here, so that the answers cannot drift apart.
//
// The package is pure: functions of their arguments, no I/O, no clock.
package kube
