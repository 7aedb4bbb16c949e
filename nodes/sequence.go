package nodes

// The order in which a pod's containers run, as kubelet runs them: init
// containers one at a time and each to completion, sidecars (init
// containers with restartPolicy Always) started in that sequence and kept
// running, then the app containers; when the app containers of a pod that
// does not restart them have finished, the sidecars stop, last first.
// Pure: the worker's records in, what to do next out.

import (
	corev1 "k8s.io/api/core/v1"
)

// Waiting and termination reasons of the pod lifecycle, as kubelet
// reports them.
const (
	// ReasonPodInitializing is the waiting reason of every container of a
	// pod with init containers until it is first created.
	ReasonPodInitializing = "PodInitializing"
	// ReasonContainersNotInitialized is the reason of a false Initialized
	// condition.
	ReasonContainersNotInitialized = "ContainersNotInitialized"
	// ReasonPostStartHookError is the termination reason of a container
	// killed because its postStart hook failed; the message starts with
	// FailedPostStartHook (kubelet's event reason) and says why.
	ReasonPostStartHookError = "PostStartHookError"
)

// isSidecar reports whether c, an init container, is a sidecar: an init
// container with restartPolicy Always.
func isSidecar(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// containerRole says where a container of a pod belongs.
type containerRole int

const (
	roleNone    containerRole = iota // not in the pod's spec
	roleApp                          // spec.containers
	roleInit                         // spec.initContainers, run to completion
	roleSidecar                      // spec.initContainers with restartPolicy Always
)

// roleOf finds container name in the pod's spec.
func roleOf(spec *corev1.PodSpec, name string) (containerRole, *corev1.Container) {
	if spec == nil {
		return roleNone, nil
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return roleApp, &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		if c := &spec.InitContainers[i]; c.Name == name {
			if isSidecar(c) {
				return roleSidecar, c
			}
			return roleInit, c
		}
	}
	return roleNone, nil
}

// restartPolicyFor is the restart policy that applies to container name's
// exits: the pod's for app containers, Always for sidecars, and for init
// containers OnFailure (they run to completion) unless the pod's policy is
// Never.
func restartPolicyFor(spec *corev1.PodSpec, name string) corev1.RestartPolicy {
	role, _ := roleOf(spec, name)
	switch role {
	case roleSidecar:
		return corev1.RestartPolicyAlways
	case roleInit:
		if spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.RestartPolicyNever
		}
		return corev1.RestartPolicyOnFailure
	case roleApp:
		return spec.RestartPolicy
	}
	return corev1.RestartPolicyNever
}

// started reports whether the container counts as started: running, its
// postStart hook returned, and its startup probe (if any) passed.
func (r *containerRecord) started() bool {
	return r != nil && r.Running && !r.PostStartPending && (r.Probes == nil || r.Probes.started)
}

// ready reports whether the running container is ready: started and its
// readiness probe (if any) passing.
func (r *containerRecord) ready() bool {
	return r.started() && r.Probes.ready()
}

// needsStart reports whether a container should be running and is not: it
// never ran, or it exited and its policy restarts it.
func needsStart(r *containerRecord) bool {
	return r == nil || (!r.Running && r.Terminated == nil)
}

// podPlan is what a pod's containers should do next.
type podPlan struct {
	// Start lists the containers to start now, in order (each still waits
	// for its restart backoff). Start them one by one and plan again after
	// each: a container that does not count as started at once (postStart
	// hook, startup probe) holds back the ones after it.
	Start []string
	// StopNext is the sidecar to stop now, for good: the pod is done and its
	// sidecars stop in reverse order, each after the one after it exited.
	StopNext string
	// Initialized: every init container completed and every sidecar
	// started (or an app container has run already, as kubelet reckons it:
	// init containers never run again once the app has started).
	Initialized bool
	// InitFailed: an init container failed under restartPolicy Never; the
	// pod fails without starting its app containers.
	InitFailed bool
	// Done: nothing of the pod starts again: its app containers finished
	// and the policy does not restart them, or InitFailed.
	Done bool
}

// planPod decides which of the pod's containers start or stop next, from
// the worker's records (nil or missing: never created).
func planPod(spec *corev1.PodSpec, recs map[string]*containerRecord) podPlan {
	var p podPlan
	inits := spec.InitContainers
	pos := initProgress(spec, recs)
	p.Initialized = pos == len(inits)
	for i := range inits {
		c := &inits[i]
		if r := recs[c.Name]; !isSidecar(c) && r != nil && r.Terminated != nil && r.Terminated.ExitCode != 0 {
			p.InitFailed = true
		}
	}
	p.Done = p.InitFailed || (p.Initialized && allTerminated(spec.Containers, recs))
	if p.Done {
		for i := len(inits) - 1; i >= 0; i-- {
			if c := &inits[i]; isSidecar(c) && recs[c.Name] != nil && recs[c.Name].Running {
				p.StopNext = c.Name
				break
			}
		}
		return p
	}
	// Sidecars the sequence has reached run for the pod's whole life:
	// restart those that exited.
	for i := 0; i < pos; i++ {
		if c := &inits[i]; isSidecar(c) && needsStart(recs[c.Name]) {
			p.Start = append(p.Start, c.Name)
		}
	}
	if !p.Initialized {
		if c := &inits[pos]; needsStart(recs[c.Name]) {
			p.Start = append(p.Start, c.Name)
		}
		return p
	}
	// App containers start in order; one whose postStart hook is running
	// holds back the ones after it, as kubelet starts them.
	for i := range spec.Containers {
		r := recs[spec.Containers[i].Name]
		if r != nil && r.Running && r.PostStartPending {
			break
		}
		if needsStart(r) {
			p.Start = append(p.Start, spec.Containers[i].Name)
		}
	}
	return p
}

// initProgress is the index of the first init container the sequence
// waits for (len(InitContainers) when the pod is initialized): a regular
// init container that has not exited 0, or a sidecar that has not started.
// Once an app container has been created the pod stays initialized, so a
// sidecar's restart or an agent restart never runs init containers again.
func initProgress(spec *corev1.PodSpec, recs map[string]*containerRecord) int {
	for i := range spec.Containers {
		if r := recs[spec.Containers[i].Name]; r != nil && r.ID != "" {
			return len(spec.InitContainers)
		}
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		r := recs[c.Name]
		if isSidecar(c) {
			if r.started() {
				continue
			}
			return i
		}
		if r != nil && r.Terminated != nil && r.Terminated.ExitCode == 0 {
			continue
		}
		return i
	}
	return len(spec.InitContainers)
}

// allTerminated reports whether every container has finished for good.
func allTerminated(cs []corev1.Container, recs map[string]*containerRecord) bool {
	for i := range cs {
		if r := recs[cs[i].Name]; r == nil || r.Terminated == nil {
			return false
		}
	}
	return len(cs) > 0
}

// incompleteInit names the init containers that keep the pod from being
// initialized: regular ones that have not exited 0 and sidecars that have
// not started (the Initialized condition's message).
func incompleteInit(spec *corev1.PodSpec, recs map[string]*containerRecord) []string {
	var out []string
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		r := recs[c.Name]
		if isSidecar(c) {
			if !r.started() {
				out = append(out, c.Name)
			}
			continue
		}
		if r == nil || r.Terminated == nil || r.Terminated.ExitCode != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}
