// Package preview computes what `bosun plan` shows: what applying a new
// revision would do to the cluster, before it is merged.
//
//	current Set ─┐                  ┌─> Objects   (create / change with a unified diff / delete)
//	next Set ────┼─> Compute ───────┼─> Pods      (reconciler.Plan's first step: start / stop)
//	Observed ────┤                  ├─> Rollouts  (Deployments whose template changes, to the end)
//	now ─────────┘                  └─> Fits, Verdict (scheduler dry run: end state and surge peak)
//
// # Contract
//
// Compute is pure: no I/O, no clock (now is passed to reconciler.Plan), no
// randomness; the same input gives the same Result, every list sorted.
//
// Objects compare the current revision (nil: nothing applied yet) with the
// next one, per kind, namespace and name, on what comes from Git only:
// apiVersion, kind, metadata name, namespace, labels and annotations (less
// the bookkeeping annotations bosun writes itself), and spec; never status.
// The comparison is semantic (map order, quantity spelling and defaults
// written or not do not count: both Sets come defaulted from manifest). A
// change carries a unified diff of the object's YAML (sigs.k8s.io/yaml, keys
// sorted) with three lines of context, as `kubectl diff` shows, and the
// changed field paths; a creation carries its whole YAML as "+" lines.
//
// Pods are the first step reconciler.Plan takes towards next from observed:
// its CreatePod actions as "start", DeletePod as "stop". UpdatePod (binding,
// status, metadata) starts and stops nothing and is left out. A rolling
// update takes several steps; Rollouts says where it ends: per Deployment
// whose template differs between current and next, the pods of other
// templates it stops, the replicas of the new one, and the strategy.
//
// The verdict is a dry run of scheduler.Schedule over the observed nodes, in
// two states of the cluster:
//   - the end state: every Deployment at spec.replicas pods of its next
//     template, every standalone pod; pods that stay keep their node and
//     their requests, pods that go (pruned, recreated, of an old template)
//     free theirs;
//   - the peak of the rolling updates, checked when a RollingUpdate
//     Deployment still has bound pods of another template: those old pods
//     all still running, plus new ones up to replicas+maxSurge in all, as
//     Kubernetes allows.
//
// When a pod does not fit, the verdict names it ("web-7f9c4d2a1b and 2 more
// cannot be scheduled: ...", with the scheduler's reason) and the shortfall
// in the resource short of most relative to the largest node: the requests
// of the pods that do not fit minus the most any one schedulable node has
// free, for example
//
//	does not fit: needs 2.5 CPU more than is free on any node; web-7f9c4d2a1b-x2b and 2 more cannot be scheduled: 0/1 nodes are available: 1 insufficient cpu
//
// A Deployment pod the planner has not created yet is shown as
// <deployment>-<template hash>, the name of its generation.
package preview
