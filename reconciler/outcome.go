package reconciler

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/manifest"
)

// RevisionOutcome says whether every object of a revision's set runs as
// written in observed, by the rules the planner keeps: each
// Deployment's rollout of its current template complete, each DaemonSet's
// too (DaemonSetRolloutStatus), each standalone
// pod ready, each Job and CronJob stored as written (their runs are not
// the revision's rollout). failed reports a Deployment whose rollout missed
// its deadline.
func RevisionOutcome(set *manifest.Set, observed Observed) (done, failed bool, msg string) {
	deployments := byName(observed.Deployments)
	done = true
	for i := range set.Deployments {
		want := &set.Deployments[i]
		got, ok := deployments[want.Namespace+"/"+want.Name]
		// Until the planner has written the new spec, the stored status is
		// the previous template's.
		if !ok || manifest.TemplateHash(&got.Spec.Template) != manifest.TemplateHash(&want.Spec.Template) ||
			!equality.Semantic.DeepEqual(got.Spec.Replicas, want.Spec.Replicas) {
			done = false
			continue
		}
		complete, fail, m := RolloutStatus(got)
		if fail {
			return false, true, "Deployment " + want.Namespace + "/" + want.Name + ": " + m
		}
		done = done && complete
	}
	done = done && daemonSetsDone(set.DaemonSets, observed.DaemonSets)
	pods := make(map[string]*corev1.Pod, len(observed.Pods))
	for _, p := range observed.Pods {
		pods[p.Namespace+"/"+p.Name] = p
	}
	for i := range set.Pods {
		want := &set.Pods[i]
		got, ok := pods[want.Namespace+"/"+want.Name]
		if !ok || got.Annotations[AnnotationSpecHash] != SpecHash(want) {
			done = false // not (yet) the pod this revision asks for
			continue
		}
		if got.Status.Phase == corev1.PodFailed && want.Spec.RestartPolicy != corev1.RestartPolicyAlways {
			// It ran as written and failed: it will not run again.
			return false, true, "Pod " + want.Namespace + "/" + want.Name + " failed" + podFailure(got)
		}
		done = done && (got.Status.Phase == corev1.PodSucceeded || kube.PodReady(got))
	}
	// A Job or CronJob is carried out once the planner has stored it as
	// written: a Job's run then has its own outcome (bosun get jobs, bosun
	// status), which may come long after, or never for a suspended one.
	jobs := byName(observed.Jobs)
	for i := range set.Jobs {
		want := &set.Jobs[i]
		got, ok := jobs[want.Namespace+"/"+want.Name]
		done = done && ok && got.Annotations[AnnotationSpecHash] == JobSpecHash(&want.Spec)
	}
	cronJobs := byName(observed.CronJobs)
	for i := range set.CronJobs {
		want := &set.CronJobs[i]
		got, ok := cronJobs[want.Namespace+"/"+want.Name]
		done = done && ok && equality.Semantic.DeepEqual(got.Spec, want.Spec)
	}
	done = done && statefulSetsDone(set, observed) // statefulset.go
	return done, false, ""
}

// byName indexes objects by namespace/name, pointing into items.
func byName[T any, PT interface {
	*T
	metav1.Object
}](items []T) map[string]PT {
	m := make(map[string]PT, len(items))
	for i := range items {
		o := PT(&items[i])
		m[o.GetNamespace()+"/"+o.GetName()] = o
	}
	return m
}

// podFailure says why a failed pod failed, from its first container that
// terminated with an error: ": container app exited with 1 (Error)".
func podFailure(p *corev1.Pod) string {
	for _, cs := range append(slices.Clip(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf(": container %s exited with %d (%s)", cs.Name, t.ExitCode, t.Reason)
		}
	}
	return ""
}
