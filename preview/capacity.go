package preview

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
	"bosun/scheduler"
)

// verdict says whether the next revision fits, from what the real planner
// and scheduler did in the simulation: it does not fit when a plan left a
// pod unschedulable (PodScheduled False), and then says which pods, the
// scheduler's message, and the shortfall found when they were left.
func verdict(s *simulation) (bool, string) {
	if len(s.stuck) == 0 {
		if len(s.started) == 0 {
			return true, "fits: no pods start"
		}
		on := map[string]bool{}
		for _, node := range s.started {
			on[node] = true
		}
		verb := "start"
		if len(s.started) == 1 {
			verb = "starts"
		}
		return true, fmt.Sprintf("fits: %s %s on %s", plural(len(s.started), "pod"), verb, plural(len(on), "node"))
	}
	return false, "does not fit" + s.stuckWhy
}

// explainStuck words the verdict on the pods of s.stuck, against the
// simulated cluster as the step that left them unschedulable leaves it: the
// shortfall in the resource short of most relative to the largest node
// (what the stuck pods request beyond the most any one schedulable node has
// free), which pods, the scheduler's message, and during which rolling
// updates (a Deployment that still runs pods of an older template).
func (s *simulation) explainStuck() string {
	var rolling []string
	for _, sp := range s.stuck {
		if sp.deployment != "" && s.oldPodsOf(sp.pod.Namespace, sp.deployment) > 0 && !slices.Contains(rolling, sp.deployment) {
			rolling = append(rolling, sp.deployment)
		}
	}
	out := ": "
	during := ""
	if len(rolling) > 0 {
		during = fmt.Sprintf(" (at step %d of the rolling update of %s, old pods still running)", s.steps, strings.Join(rolling, ", "))
	}

	used := map[string]scheduler.Resources{}
	for _, p := range s.o.Pods {
		if p.Spec.NodeName == "" || kube.PodFinished(p) {
			continue
		}
		r := requests(p)
		u := used[p.Spec.NodeName]
		u.MilliCPU += r.MilliCPU
		u.Memory += r.Memory
		used[p.Spec.NodeName] = u
	}
	var needCPU, needMem, freeCPU, freeMem, maxCPU, maxMem int64
	for _, sp := range s.stuck {
		r := requests(sp.pod)
		needCPU += r.MilliCPU
		needMem += r.Memory
	}
	for i := range s.o.Nodes {
		n := scheduler.NodeOf(&s.o.Nodes[i])
		maxCPU, maxMem = max(maxCPU, n.Allocatable.MilliCPU), max(maxMem, n.Allocatable.Memory)
		if n.Unschedulable {
			continue
		}
		freeCPU = max(freeCPU, n.Allocatable.MilliCPU-used[n.Name].MilliCPU)
		freeMem = max(freeMem, n.Allocatable.Memory-used[n.Name].Memory)
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
	case rc >= rm:
		out += "needs " + formatCPU(shortCPU) + " CPU more than is free on any node; "
	default:
		out += "needs " + formatMemory(shortMem) + " memory more than is free on any node; "
	}
	who := s.stuck[0].pod.Name
	if len(s.stuck) > 1 {
		who += fmt.Sprintf(" and %d more", len(s.stuck)-1)
	}
	return out + who + " cannot be scheduled: " + s.stuck[0].why + during
}

// requests is what the scheduler counts a pod as requesting.
func requests(p *corev1.Pod) scheduler.Resources {
	return scheduler.PodOf(p.Namespace+"/"+p.Name, "", p.Namespace, p.Labels, &p.Spec).Requests
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
