package reconciler

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/canary"
	"bosun/kube"
)

// The canary actions.
const (
	// PutCanary stores a Deployment's canary (Action.Canary).
	PutCanary ActionType = "PutCanary"
	// DeleteCanary deletes a Deployment's stored canary.
	DeleteCanary ActionType = "DeleteCanary"
)

// CanarySummary is a Deployment's canary as the plan leaves it.
type CanarySummary struct {
	Namespace, Name string
	Spec            *canary.Spec  // as main asks for it; nil when it asks for none
	State           *canary.State // as stored after the plan; nil when none
	// Replicas is how many canary pods run; Ready how many are ready.
	Replicas, Ready int
	// MeasureAt is when the canary's query is due (zero: no query, or the
	// canary does not run).
	MeasureAt time.Time
}

// canaryRun is what the planner does with a Deployment's canary.
type canaryRun struct {
	dec  canary.Decision
	spec *canary.Spec
	// stored is the canary's hash before the decision: its pods are the
	// ones analysed.
	storedHash string
	pods       []podRef // the running canary's pods that stay
}

// canaryFor decides a Deployment's canary (canary.Decide) from its
// annotations, the stored state, the branch as last fetched, the canary
// pods among pods and the latest measurement; it records the state to
// store, the events and when to wake.
func (p *planner) canaryFor(d *appsv1.Deployment, hash string, replicas int, pods []podRef) *canaryRun {
	dk := key(d.Namespace, d.Name)
	spec, _ := canary.Parse(d.Annotations) // validated with the revision
	stored := p.canaries[dk]
	if spec == nil && stored == nil {
		return nil
	}
	r := &canaryRun{spec: spec}
	in := canary.Input{Namespace: d.Namespace, Name: d.Name, Spec: spec, State: stored, StableHash: hash, Replicas: replicas, Now: p.now}
	in.StartDeadline, _ = progressDeadline(d) // none: math.MaxInt32 s, as in Kubernetes
	if c, ok := p.observed.CanaryBranches[dk]; ok {
		in.Candidate = &c
	}
	if m, ok := p.observed.Measurements[dk]; ok {
		in.Measurement = &m
	}
	if stored != nil {
		r.storedHash = stored.Hash
		for _, ref := range pods {
			if isCanaryPod(ref.pod, hash) && ref.pod.Labels[LabelPodTemplateHash] == stored.Hash {
				in.Pods = append(in.Pods, ref.pod)
			}
		}
	}
	r.dec = canary.Decide(in)
	p.wakeAt(r.dec.Wake)
	p.canaryEvents = append(p.canaryEvents, r.dec.Events...)
	p.canaryDone[dk] = true
	switch next := r.dec.State; {
	case next == nil && stored != nil:
		p.other = append(p.other, Action{Type: DeleteCanary, Namespace: d.Namespace, Name: d.Name, Reason: "no canary"})
	case next != nil && !sameState(next, stored):
		p.other = append(p.other, Action{Type: PutCanary, Canary: next, Reason: "canary " + string(next.Phase)})
	}
	return r
}

// isCanaryPod reports whether a Deployment's pod is on the canary track
// of a template other than the Deployment's own (hash): a canary pod whose
// template main now runs is a stable pod.
func isCanaryPod(pod *corev1.Pod, hash string) bool {
	return pod.Labels[canary.LabelTrack] == canary.TrackCanary && pod.Labels[LabelPodTemplateHash] != hash
}

func sameState(a, b *canary.State) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// canaryPods runs a Deployment's canary pods: those of another template
// go, finished, lost or evicted ones are replaced, and there are as many
// as the decision says, the newest removed first.
func (p *planner) canaryPods(d *appsv1.Deployment, r *canaryRun, pods []podRef, pinned bool) {
	if r == nil {
		for _, ref := range pods {
			p.deletePod(ref, "canary ended")
		}
		return
	}
	st := r.dec.State
	var keep []podRef
	used := map[int]bool{}
	cd := *d
	if r.dec.Run {
		cd.Spec.Template = *st.Template
	}
	for _, ref := range pods {
		pod := ref.pod
		if !r.dec.Run || pod.Labels[LabelPodTemplateHash] != st.Hash {
			why := "canary ended"
			if st != nil && st.Phase != canary.Progressing {
				why = "canary " + string(st.Phase)
			}
			p.deletePod(ref, why)
			continue
		}
		if n, ok := ordinalOf(pod.Name, &cd, st.Hash); ok {
			used[n] = true
		}
		why, evict := p.evictedOrDrained(pod, pinned, false)
		switch {
		case kube.PodFinished(pod):
			p.deletePod(ref, "replace "+string(pod.Status.Phase)+" canary pod")
		case p.lost(pod, pinned):
			p.deletePod(ref, "node "+pod.Spec.NodeName+" lost")
		case evict:
			p.deletePod(ref, why)
		default:
			keep = append(keep, ref)
		}
	}
	if !r.dec.Run {
		return
	}
	if len(keep) > r.dec.Replicas {
		slices.SortFunc(keep, func(a, b podRef) int { return deletionOrder(a, b, &cd, 0, p.now) })
		for _, ref := range keep[:len(keep)-r.dec.Replicas] {
			p.deletePod(ref, fmt.Sprintf("canary scale down %d -> %d", len(keep), r.dec.Replicas))
		}
		keep = keep[len(keep)-r.dec.Replicas:]
	}
	r.pods = keep
	for _, ref := range keep {
		p.setTrack(ref, &cd.Spec.Template, canary.TrackCanary, r.dec.Weight)
	}
	ordinal := 0
	for range r.dec.Replicas - len(keep) {
		for used[ordinal] {
			ordinal++
		}
		used[ordinal] = true
		pod := newDeploymentPod(&cd, st.Hash, ordinal)
		trackMeta(pod, &cd.Spec.Template, canary.TrackCanary, r.dec.Weight)
		p.createPod(pod, "Deployment/"+key(d.Namespace, d.Name), fmt.Sprintf("canary %s of %s at %d%%", st.Hash, st.Branch, r.dec.Weight))
	}
}

// stableTrack labels the Deployment's own pods for the canary: track
// stable with the rest of the weight while the canary runs, as the
// template says otherwise.
func (p *planner) stableTrack(ds *deploymentState, r *canaryRun) {
	track, weight := "", int32(0)
	if r != nil && r.dec.Run {
		track, weight = canary.TrackStable, 100-r.dec.Weight
	}
	for _, pod := range ds.kept {
		p.setTrack(podRef{pod: pod, key: key(pod.Namespace, pod.Name)}, &ds.d.Spec.Template, track, weight)
	}
	for _, c := range ds.created {
		trackMeta(c.pod, &ds.d.Spec.Template, track, weight)
	}
}

// setTrack updates a pod's track label and weight annotation in place
// when they differ from what trackMeta gives: no restart.
func (p *planner) setTrack(ref podRef, t *corev1.PodTemplateSpec, track string, weight int32) {
	want := &corev1.Pod{}
	want.Labels, want.Annotations = maps.Clone(ref.pod.Labels), maps.Clone(ref.pod.Annotations)
	trackMeta(want, t, track, weight)
	if maps.Equal(want.Labels, ref.pod.Labels) && maps.Equal(want.Annotations, ref.pod.Annotations) {
		return
	}
	c := p.changes[ref.key]
	if c == nil {
		c = &change{pod: ref.pod}
	}
	pod := p.writable(c)
	pod.Labels, pod.Annotations = want.Labels, want.Annotations
	c.dirty = true
	if c.reason == "" {
		c.reason = "canary weights: " + describeTrack(track, weight)
	}
}

func describeTrack(track string, weight int32) string {
	if track == "" {
		return "no canary"
	}
	return fmt.Sprintf("%s %d%%", track, weight)
}

// trackMeta sets a pod's track label and weight annotation: track and
// weight when track is set, else what its template says (usually none).
func trackMeta(pod *corev1.Pod, t *corev1.PodTemplateSpec, track string, weight int32) {
	set := func(m *map[string]string, k, v string, ok bool) {
		if !ok {
			delete(*m, k)
			return
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	if track == "" {
		v, ok := t.Labels[canary.LabelTrack]
		set(&pod.Labels, canary.LabelTrack, v, ok)
		v, ok = t.Annotations[canary.AnnotationPodWeight]
		set(&pod.Annotations, canary.AnnotationPodWeight, v, ok)
		return
	}
	set(&pod.Labels, canary.LabelTrack, track, true)
	set(&pod.Annotations, canary.AnnotationPodWeight, strconv.Itoa(int(weight)), true)
}

// canarySummary summarises a Deployment's canary after the plan.
func (p *planner) canarySummary(d *appsv1.Deployment, r *canaryRun) {
	if r == nil {
		return
	}
	s := CanarySummary{Namespace: d.Namespace, Name: d.Name, Spec: r.spec, State: r.dec.State, MeasureAt: r.dec.MeasureAt}
	if r.dec.Run {
		s.Replicas = r.dec.Replicas
		for _, ref := range r.pods {
			if kube.PodReady(ref.pod) {
				s.Ready++
			}
		}
	}
	p.canarySums = append(p.canarySums, s)
}

// pruneCanaries deletes the stored canaries of Deployments no longer in
// Git.
func (p *planner) pruneCanaries() {
	for _, k := range slices.Sorted(maps.Keys(p.canaries)) {
		if !p.canaryDone[k] {
			c := p.canaries[k]
			p.other = append(p.other, Action{Type: DeleteCanary, Namespace: c.Namespace, Name: c.Name, Reason: "pruned: deployment removed from Git"})
		}
	}
}
