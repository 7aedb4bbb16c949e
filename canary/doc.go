// Package canary is the one model of a canary release, pure: no I/O, no
// clock, no randomness (scripts/check-imports.sh keeps it so).
//
// A Deployment on the main branch that carries bosun.dev/canary-branch and
// bosun.dev/canary-weight (or canary-steps with canary-step-interval) also
// runs the pod template of the same-named Deployment on that branch, as a
// canary: its own pods, labelled bosun.dev/track: canary, beside the
// stable ones (bosun.dev/track: stable), with the main Deployment's
// selector. The Service proxy splits new connections between the two
// tracks by their bosun.dev/weight, exactly, whatever the pod counts.
//
// Parse reads the annotations (manifest validation reports its problems
// with file:line, the planner runs what it returns). Decide is the whole
// life of one canary: start on a new branch commit, analysis (built-in
// signals and an optional Prometheus gate, whose Measurements the leader
// makes), steps, abort, promotion when main runs the canary's template,
// end when the annotation goes. Its State is what the leader keeps in etcd,
// so that a failover resumes a canary where it was; a Candidate is what
// the branch holds, as the leader last fetched it. reconciler.Plan calls
// Decide for every Deployment and turns the Decision into pods, weights
// and a stored State.
//
// bosun never writes to Git: promotion is the team's merge, and an aborted
// commit stays aborted until the branch gets a new one.
package canary
