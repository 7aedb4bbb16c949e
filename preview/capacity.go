package preview

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/manifest"
	"bosun/reconciler"
	"bosun/scheduler"
)

// placement is one pod of a dry run: what the scheduler sees, and the name
// the verdict shows.
type placement struct {
	pod  scheduler.Pod
	name string
	// pinned marks a new pod whose spec names its node: it starts there
	// without being placed.
	pinned bool
}

// scenario is one state of the cluster to fit: pods that stay where they are
// (bound) and pods to place.
type scenario struct {
	bound, place []placement
}

// deploymentPlan is what the dry run needs of one Deployment of the next
// revision.
type deploymentPlan struct {
	d        *appsv1.Deployment
	hash     string
	replicas int
	surge    int
	rolling  bool     // RollingUpdate with pods of another template still running
	current  int      // bound pods of the new template that stay
	old      int      // bound pods of other templates
	names    []string // names of new-template pods not yet bound, to show
}

// capacity dry-runs the scheduler on the next revision's end state (every
// Deployment at spec.replicas pods of its new template, every standalone
// pod) and, when a RollingUpdate replaces pods, on its peak (every old pod
// still running, plus maxSurge new ones). Pods that stay keep their node;
// pods the plan deletes, and old-template pods at the end, free their
// requests.
func capacity(next *manifest.Set, observed reconciler.Observed, deleted map[string]bool, actions []reconciler.Action) (bool, string) {
	deps := make(map[string]*deploymentPlan, len(next.Deployments))
	order := make([]*deploymentPlan, 0, len(next.Deployments))
	for i := range next.Deployments {
		d := &next.Deployments[i]
		dp := &deploymentPlan{d: d, hash: manifest.TemplateHash(&d.Spec.Template), replicas: replicas(d)}
		dp.surge, _ = surge(d)
		deps[d.Namespace+"/"+d.Name] = dp
		order = append(order, dp)
	}
	// Names the planner gave the pods it creates now, to show them.
	for _, a := range actions {
		if a.Type != reconciler.CreatePod {
			continue
		}
		if dp := deps[a.Pod.Namespace+"/"+deploymentOf(a.Pod)]; dp != nil && a.Pod.Labels[labelPodTemplateHash] == dp.hash {
			dp.names = append(dp.names, a.Pod.Name)
		}
	}

	var end, peak scenario
	var oldPods []placement // bound pods of a template being replaced
	staying := make(map[string]bool)
	pods := make([]*corev1.Pod, 0, len(observed.Pods))
	for i := range observed.Pods {
		pods = append(pods, &observed.Pods[i])
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for _, p := range pods {
		k := p.Namespace + "/" + p.Name
		if finished(p) {
			continue
		}
		pl := placement{pod: schedPod(k, p.Namespace, deploymentOf(p), p.Labels, &p.Spec), name: p.Name}
		owner := deploymentOf(p)
		if owner == "" {
			if deleted[k] {
				continue // pruned, or recreated with a new spec (placed below)
			}
			// Standalone, or owned by a kind bosun does not manage: it stays.
			staying[k] = true
			if p.Spec.NodeName != "" {
				end.bound = append(end.bound, pl)
			} else {
				end.place = append(end.place, pl)
			}
			continue
		}
		// A Deployment's pods are judged by their template, not by the
		// planner's first step: old ones run until the rollout replaces
		// them, and the first step may already delete some.
		dp := deps[p.Namespace+"/"+owner]
		switch {
		case dp == nil:
			// Its Deployment leaves Git: pruned.
		case p.Labels[labelPodTemplateHash] != dp.hash:
			if p.Spec.NodeName != "" {
				dp.old++
				oldPods = append(oldPods, pl)
			}
		case p.Spec.NodeName == "":
			dp.names = append(dp.names, p.Name) // placed below, with its siblings
		case dp.current < dp.replicas:
			dp.current++
			end.bound = append(end.bound, pl)
		}
	}
	peak.bound = append(peak.bound, end.bound...)
	peak.place = append(peak.place, end.place...)

	for _, dp := range order {
		dp.rolling = dp.old > 0 && dp.d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType
		need := dp.replicas - dp.current
		atPeak := need
		if dp.rolling {
			// Kubernetes keeps at most replicas+maxSurge pods while it rolls.
			atPeak = max(0, min(need, dp.replicas+dp.surge-dp.old-dp.current))
		}
		k := dp.d.Namespace + "/" + dp.d.Name
		spec := &dp.d.Spec.Template.Spec
		labels := make(map[string]string, len(dp.d.Spec.Template.Labels)+1)
		maps.Copy(labels, dp.d.Spec.Template.Labels)
		labels[labelPodTemplateHash] = dp.hash
		for i := range need {
			name := dp.d.Name + "-" + dp.hash
			if i < len(dp.names) {
				name = dp.names[i]
			}
			pl := placement{pod: schedPod(k+"-"+dp.hash+"#"+strconv.Itoa(i), dp.d.Namespace, dp.d.Name, labels, spec), name: name}
			end.place = append(end.place, pl)
			if i < atPeak {
				peak.place = append(peak.place, pl)
			}
		}
	}
	for _, p := range oldPods {
		if dp := deps[p.pod.Owner]; dp != nil && dp.rolling {
			peak.bound = append(peak.bound, p)
		}
	}
	for i := range next.Pods {
		p := &next.Pods[i]
		k := p.Namespace + "/" + p.Name
		if staying[k] {
			continue
		}
		pl := placement{pod: schedPod(k, p.Namespace, "", p.Labels, &p.Spec), name: p.Name}
		if p.Spec.NodeName != "" { // pinned by its spec: it waits for that node
			pl.pinned = true
			end.bound = append(end.bound, pl)
			peak.bound = append(peak.bound, pl)
			continue
		}
		end.place = append(end.place, pl)
		peak.place = append(peak.place, pl)
	}

	nodes := schedNodes(observed.Nodes)
	fits, placed, onNodes, why := dryRun(nodes, end)
	if !fits {
		return false, "does not fit: " + why
	}
	var rolling []string
	for _, dp := range order {
		if dp.rolling {
			rolling = append(rolling, dp.d.Name)
		}
	}
	if len(rolling) > 0 {
		if ok, _, _, why := dryRun(nodes, peak); !ok {
			return false, "does not fit during the rolling update of " + strings.Join(rolling, ", ") +
				" (old pods still running plus maxSurge new ones): " + why
		}
	}
	if placed == 0 {
		return true, "fits: no pods start"
	}
	verb := "start"
	if placed == 1 {
		verb = "starts"
	}
	return true, fmt.Sprintf("fits: %s %s on %s", plural(placed, "pod"), verb, plural(onNodes, "node"))
}

// schedPod describes a pod to the scheduler, as the planner does. Owner is
// the Deployment's "namespace/name", which groups replicas for spreading.
func schedPod(key, namespace, deployment string, labels map[string]string, spec *corev1.PodSpec) scheduler.Pod {
	owner := ""
	if deployment != "" {
		owner = namespace + "/" + deployment
	}
	return scheduler.PodOf(key, owner, namespace, labels, spec)
}

func schedNodes(observed []corev1.Node) []scheduler.Node {
	nodes := make([]scheduler.Node, 0, len(observed))
	for i := range observed {
		nodes = append(nodes, scheduler.NodeOf(&observed[i]))
	}
	return nodes
}

// dryRun places s.place around s.bound. It returns whether every pod found
// a node, how many were placed (pinned pods on a known node included) on how
// many distinct nodes, and, when some did not fit, why.
func dryRun(nodes []scheduler.Node, s scenario) (fits bool, placed, onNodes int, why string) {
	all := make([]scheduler.Pod, 0, len(s.bound)+len(s.place))
	for _, p := range s.bound {
		all = append(all, p.pod)
	}
	for _, p := range s.place {
		p.pod.NodeName = ""
		all = append(all, p.pod)
	}
	res := scheduler.Schedule(nodes, all)

	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
	}
	used := make(map[string]bool)
	for _, p := range s.bound {
		if p.pinned && known[p.pod.NodeName] {
			placed++
			used[p.pod.NodeName] = true
		}
	}
	var failed []placement
	for _, p := range s.place {
		if node, ok := res.Bindings[p.pod.Key]; ok {
			placed++
			used[node] = true
		} else {
			failed = append(failed, p)
		}
	}
	if len(failed) == 0 {
		return true, placed, len(used), ""
	}

	// Explain against the cluster once everything that fits is placed, as
	// the planner does, so the message is the one the pods will show.
	again := make([]scheduler.Pod, 0, len(all))
	for _, p := range s.bound {
		again = append(again, p.pod)
	}
	usedCPU, usedMem := make(map[string]int64), make(map[string]int64)
	for _, p := range s.bound {
		usedCPU[p.pod.NodeName] += p.pod.Requests.MilliCPU
		usedMem[p.pod.NodeName] += p.pod.Requests.Memory
	}
	var needCPU, needMem int64
	for _, p := range s.place {
		sp := p.pod
		if node, ok := res.Bindings[sp.Key]; ok {
			sp.NodeName = node
			usedCPU[node] += sp.Requests.MilliCPU
			usedMem[node] += sp.Requests.Memory
			again = append(again, sp)
		}
	}
	for _, p := range failed {
		again = append(again, p.pod)
		needCPU += p.pod.Requests.MilliCPU
		needMem += p.pod.Requests.Memory
	}
	final := scheduler.Schedule(nodes, again)
	reason := final.Unschedulable[failed[0].pod.Key]
	if reason == "" { // placed on the second pass: fragmentation of the first
		reason = res.Unschedulable[failed[0].pod.Key]
	}
	who := failed[0].name
	if len(failed) > 1 {
		who += fmt.Sprintf(" and %d more", len(failed)-1)
	}
	msg := who + " cannot be scheduled: " + reason

	// The shortfall: what the pods that do not fit request beyond the most
	// any one node has free, in the resource short of most (relative to the
	// largest node's allocatable).
	var freeCPU, freeMem, maxCPU, maxMem int64
	for _, n := range nodes {
		maxCPU, maxMem = max(maxCPU, n.Allocatable.MilliCPU), max(maxMem, n.Allocatable.Memory)
		if n.Unschedulable {
			continue
		}
		freeCPU = max(freeCPU, n.Allocatable.MilliCPU-usedCPU[n.Name])
		freeMem = max(freeMem, n.Allocatable.Memory-usedMem[n.Name])
	}
	shortCPU, shortMem := needCPU-freeCPU, needMem-freeMem
	rel := func(short, scale int64) float64 {
		if short <= 0 {
			return 0
		}
		return float64(short) / float64(max(scale, 1))
	}
	switch rc, rm := rel(shortCPU, maxCPU), rel(shortMem, maxMem); {
	case rc == 0 && rm == 0, maxCPU == 0 && maxMem == 0: // fragmentation, selectors, or no nodes at all
		return false, placed, len(used), msg
	case rc >= rm:
		return false, placed, len(used), "needs " + formatCPU(shortCPU) + " CPU more than is free on any node; " + msg
	default:
		return false, placed, len(used), "needs " + formatMemory(shortMem) + " memory more than is free on any node; " + msg
	}
}

// formatCPU renders millicores as cores with up to three decimals, trailing
// zeros trimmed: 2500 -> "2.5", 250 -> "0.25", 1000 -> "1".
func formatCPU(milli int64) string {
	s := strconv.FormatInt(milli/1000, 10)
	if frac := milli % 1000; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
	}
	return s
}

// formatMemory renders bytes in Gi (two decimals at most) from 1Gi up, else
// in Mi (one decimal at most), else in Ki, rounding up so a shortfall is
// never understated: 1.5Gi -> "1.5Gi", 300Mi -> "300Mi".
func formatMemory(b int64) string {
	unit, suffix, decimals := int64(1<<30), "Gi", 2
	switch {
	case b < 1<<20:
		unit, suffix, decimals = 1<<10, "Ki", 0
	case b < 1<<30:
		unit, suffix, decimals = 1<<20, "Mi", 1
	}
	scale := math.Pow10(decimals)
	v := math.Ceil(float64(b)/float64(unit)*scale) / scale
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if decimals > 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s + suffix
}
