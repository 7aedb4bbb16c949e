package server

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/api"
	"bosun/canary"
	"bosun/gitsource"
	"bosun/kube"
	"bosun/manifest"
	"bosun/preview"
	"bosun/reconciler"
	"bosun/store"
)

// canaryDeployments lists the Deployments of the running revision that
// name branch in bosun.dev/canary-branch.
func canaryDeployments(desired *manifest.Set, branch string) []*appsv1.Deployment {
	if desired == nil || branch == "" {
		return nil
	}
	var out []*appsv1.Deployment
	for i := range desired.Deployments {
		d := &desired.Deployments[i]
		if spec, _ := canary.Parse(d.Annotations); spec != nil && spec.Branch == branch {
			out = append(out, d)
		}
	}
	return out
}

// branchOfRef is the branch a plan's ref names, if it names one.
func branchOfRef(ref string) string {
	return strings.TrimPrefix(ref, "refs/heads/")
}

// canaryPlans previews what the canary branch at rev (its manifests lb)
// would run beside each of deps, Deployments of the running revision
// desired: the candidate as the leader works it out (canaryCandidate),
// then one reconciler.Plan of the running revision over the observed
// cluster with that candidate, as the leader's next plan would be once it
// fetched the branch. Nothing is written.
func canaryPlans(policy manifest.Policy, path string, key []byte, desired *manifest.Set, deps []*appsv1.Deployment,
	rev gitsource.Revision, lb loadedBranch, snap *store.Snapshot, now time.Time) []api.CanaryPlan {
	loaded := map[string]loadedBranch{}
	if !rev.Missing {
		loaded[rev.Commit] = lb
	}
	cands := map[string]canary.Candidate{}
	for _, d := range deps {
		cands[d.Namespace+"/"+d.Name] = canaryCandidate(policy, path, key, desired, d, rev, loaded)
	}
	o := observed(snap)
	o.CanaryBranches = cands
	res := reconciler.Plan(desired, o, now)
	sums := map[string]reconciler.CanarySummary{}
	for _, s := range res.Canaries {
		sums[s.Namespace+"/"+s.Name] = s
	}
	stored := map[string]canary.State{}
	for _, c := range snap.Canaries {
		stored[c.Key()] = c
	}
	var out []api.CanaryPlan
	for _, d := range deps {
		k := d.Namespace + "/" + d.Name
		cand := cands[k]
		cp := api.CanaryPlan{Namespace: d.Namespace, Name: d.Name, Branch: rev.Branch, Commit: cand.Commit, Subject: cand.Subject,
			StableHash: manifest.TemplateHash(&d.Spec.Template), Hash: cand.Hash, StableReplicas: 1, Reason: cand.Err}
		if d.Spec.Replicas != nil {
			cp.StableReplicas = *d.Spec.Replicas
		}
		if c, ok := stored[k]; ok {
			cp.Current = describeState(&c)
		}
		if s, ok := sums[k]; ok {
			if s.Spec != nil {
				cp.Steps = s.Spec.Steps
			}
			if st := s.State; st != nil {
				cp.Phase, cp.Reason = st.Phase, st.Reason
				if st.Active() {
					cp.Weight, cp.StableWeight, cp.Replicas = st.Weight, 100-st.Weight, s.Replicas
				}
			}
		}
		if cp.Phase == "" && cand.Err != "" {
			cp.Phase = canary.Failed
		}
		if cand.Template != nil {
			cp.Changes = templateChanges(&d.Spec.Template, cand.Template)
		}
		cp.Pods = canaryPodPlans(res.Actions, snap.Pods, d)
		out = append(out, cp)
	}
	return out
}

// describeState renders a stored canary for a plan.
func describeState(c *canary.State) string {
	out := string(c.Phase)
	if c.Commit != "" {
		out += " at " + short(c.Commit)
	}
	if c.Active() {
		out += fmt.Sprintf(", step %d, %d%%", c.Step+1, c.Weight)
	}
	if c.Reason != "" {
		out += ": " + c.Reason
	}
	return out
}

// canaryPodPlans are the canary pods of d that actions start or stop.
func canaryPodPlans(actions []reconciler.Action, observed []*corev1.Pod, d *appsv1.Deployment) []api.CanaryPodPlan {
	ours := func(p *corev1.Pod) bool {
		kind, name := kube.Controller(p)
		return p.Namespace == d.Namespace && kind == "Deployment" && name == d.Name && p.Labels[canary.LabelTrack] == canary.TrackCanary
	}
	byKey := map[string]*corev1.Pod{}
	for _, p := range observed {
		byKey[p.Namespace+"/"+p.Name] = p
	}
	var out []api.CanaryPodPlan
	for _, a := range actions {
		switch a.Type {
		case reconciler.CreatePod:
			if !ours(a.Pod) {
				continue
			}
			pp := api.CanaryPodPlan{Op: preview.OpStart, Name: a.Pod.Name, Node: a.Pod.Spec.NodeName, Reason: a.Reason}
			for _, c := range a.Pod.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					pp.Reason += "; cannot be scheduled: " + c.Message
				}
			}
			out = append(out, pp)
		case reconciler.DeletePod:
			if p := byKey[a.Namespace+"/"+a.Name]; p != nil && ours(p) {
				out = append(out, api.CanaryPodPlan{Op: preview.OpStop, Name: a.Name, Node: p.Spec.NodeName, Reason: a.Reason})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b api.CanaryPodPlan) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// templateChanges says how the branch's pod template differs from main's,
// for a person: containers added and removed, and per container its
// image, env (names only: a value, literal or from a Secret, is never
// shown), resources and the other fields that differ; then the pod's
// labels, annotations and spec fields that differ.
func templateChanges(main, branch *corev1.PodTemplateSpec) []string {
	var out []string
	containers := func(kind string, a, b []corev1.Container) {
		old := map[string]*corev1.Container{}
		for i := range a {
			old[a[i].Name] = &a[i]
		}
		seen := map[string]bool{}
		for i := range b {
			c := &b[i]
			seen[c.Name] = true
			o := old[c.Name]
			if o == nil {
				out = append(out, fmt.Sprintf("+ %s %s (image %s)", kind, c.Name, c.Image))
				continue
			}
			out = append(out, containerChanges(kind+" "+c.Name, o, c)...)
		}
		for i := range a {
			if !seen[a[i].Name] {
				out = append(out, fmt.Sprintf("- %s %s", kind, a[i].Name))
			}
		}
	}
	containers("init container", main.Spec.InitContainers, branch.Spec.InitContainers)
	containers("container", main.Spec.Containers, branch.Spec.Containers)
	for _, m := range []struct {
		what string
		a, b map[string]string
	}{{"label", main.Labels, branch.Labels}, {"annotation", main.Annotations, branch.Annotations}} {
		for _, k := range slices.Sorted(maps.Keys(unionKeys(m.a, m.b))) {
			va, ina := m.a[k]
			vb, inb := m.b[k]
			switch {
			case !ina:
				out = append(out, fmt.Sprintf("+ %s %s", m.what, k))
			case !inb:
				out = append(out, fmt.Sprintf("- %s %s", m.what, k))
			case va != vb:
				out = append(out, fmt.Sprintf("~ %s %s", m.what, k))
			}
		}
	}
	for _, f := range fieldChanges(main.Spec, branch.Spec, "containers", "initContainers") {
		out = append(out, "~ spec."+f)
	}
	return out
}

// containerChanges compares one container of main (a) and of the branch (b).
func containerChanges(what string, a, b *corev1.Container) []string {
	var out []string
	if a.Image != b.Image {
		out = append(out, fmt.Sprintf("%s: image %s -> %s", what, a.Image, b.Image))
	}
	oldEnv := map[string]corev1.EnvVar{}
	for _, e := range a.Env {
		oldEnv[e.Name] = e
	}
	var env []string
	newEnv := map[string]bool{}
	for _, e := range b.Env {
		newEnv[e.Name] = true
		o, ok := oldEnv[e.Name]
		switch {
		case !ok:
			env = append(env, "+"+e.Name+envSource(e))
		case !reflect.DeepEqual(o, e):
			env = append(env, "~"+e.Name+envSource(e))
		}
	}
	for _, e := range a.Env {
		if !newEnv[e.Name] {
			env = append(env, "-"+e.Name)
		}
	}
	if len(env) > 0 {
		out = append(out, fmt.Sprintf("%s: env %s", what, strings.Join(env, " ")))
	}
	for _, r := range []struct {
		name string
		a, b corev1.ResourceList
	}{{"requests", a.Resources.Requests, b.Resources.Requests}, {"limits", a.Resources.Limits, b.Resources.Limits}} {
		for _, k := range slices.Sorted(maps.Keys(unionKeys(r.a, r.b))) {
			qa, ina := r.a[k]
			qb, inb := r.b[k]
			if ina && inb && qa.Cmp(qb) == 0 {
				continue
			}
			from, to := "(none)", "(none)"
			if ina {
				from = qa.String()
			}
			if inb {
				to = qb.String()
			}
			out = append(out, fmt.Sprintf("%s: %s %s %s -> %s", what, r.name, k, from, to))
		}
	}
	for _, f := range fieldChanges(*a, *b, "image", "env", "resources") {
		out = append(out, fmt.Sprintf("%s: %s changed", what, f))
	}
	return out
}

// envSource says where an env var's value comes from, never the value.
func envSource(e corev1.EnvVar) string {
	switch v := e.ValueFrom; {
	case v == nil:
		return ""
	case v.SecretKeyRef != nil:
		return fmt.Sprintf(" (from Secret %s key %s)", v.SecretKeyRef.Name, v.SecretKeyRef.Key)
	case v.ConfigMapKeyRef != nil:
		return fmt.Sprintf(" (from ConfigMap %s key %s)", v.ConfigMapKeyRef.Name, v.ConfigMapKeyRef.Key)
	case v.FieldRef != nil:
		return " (from " + v.FieldRef.FieldPath + ")"
	case v.ResourceFieldRef != nil:
		return " (from " + v.ResourceFieldRef.Resource + ")"
	}
	return ""
}

// fieldChanges lists the top-level JSON fields of a and b that differ,
// but for skip, sorted.
func fieldChanges(a, b any, skip ...string) []string {
	ma, mb := jsonFields(a), jsonFields(b)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(unionKeys(ma, mb))) {
		if !slices.Contains(skip, k) && !reflect.DeepEqual(ma[k], mb[k]) {
			out = append(out, k)
		}
	}
	return out
}

func jsonFields(v any) map[string]any {
	b, _ := json.Marshal(v) // API types always marshal
	m := map[string]any{}
	json.Unmarshal(b, &m)
	return m
}

func unionKeys[K ~string, V any](a, b map[K]V) map[K]bool {
	out := map[K]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
