package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Resources is an amount of cpu (in millicores) and memory (in bytes).
type Resources struct {
	MilliCPU int64
	Memory   int64
}

// Node is a node as the scheduler sees it.
type Node struct {
	Name          string
	Labels        map[string]string
	Allocatable   Resources
	Unschedulable bool
}

// Pod is a pod as the scheduler sees it.
type Pod struct {
	// Key identifies the pod in the Result, conventionally "namespace/name".
	Key string
	// Owner groups pods for spreading, e.g. "Deployment/default/web"; "" for none.
	Owner    string
	Requests Resources
	// NodeSelector lists labels a node must carry, with these values.
	NodeSelector map[string]string
	// NodeName, when set, means the pod is already bound: it counts as used on
	// that node and is not placed again.
	NodeName string
}

// Result is the outcome of Schedule. Every unbound pod appears in exactly one of
// the two maps; both maps are non-nil.
type Result struct {
	// Bindings maps pod key to the node the pod was placed on.
	Bindings map[string]string
	// Unschedulable maps pod key to why no node could take it.
	Unschedulable map[string]string
}

// Defaults the score (not the filter) uses for a pod that requests nothing, as
// kube-scheduler's non-zero requests do.
const (
	defaultMilliCPU = 100
	defaultMemory   = 200 << 20
)

// Reasons a node is filtered out; the texts appear in Result.Unschedulable.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonSelector      = "node(s) didn't match node selector"
	reasonCPU           = "insufficient cpu"
	reasonMemory        = "insufficient memory"
)

// owner tracks how many pods of one owner each node holds, for spreading.
type owner struct {
	counts []int32 // indexed like cluster.names
	max    int32
}

// cluster is the scheduler's working state, laid out as parallel slices so the
// per-node inner loop touches no maps and allocates nothing.
type cluster struct {
	names              []string
	labels             []map[string]string
	unschedulable      []bool
	allocCPU, allocMem []int64
	usedCPU, usedMem   []int64 // real requests: the filter
	scoreCPU, scoreMem []int64 // non-zero requests: the score
	invCPU, invMem     []float64
	index              map[string]int
	owners             map[string]*owner
}

// Schedule places every unbound pod, in the order given, onto the best feasible
// node, accounting each placement before placing the next pod. See the package
// documentation for the filter and score.
func Schedule(nodes []Node, pods []Pod) Result {
	c := newCluster(nodes)
	res := Result{Bindings: map[string]string{}, Unschedulable: map[string]string{}}
	for i := range pods {
		p := &pods[i]
		if p.NodeName != "" {
			if n, ok := c.index[p.NodeName]; ok {
				c.place(n, p)
			}
		}
	}
	for i := range pods {
		p := &pods[i]
		if p.NodeName != "" {
			continue
		}
		n := c.best(p)
		if n < 0 {
			res.Unschedulable[p.Key] = c.explain(p)
			continue
		}
		c.place(n, p)
		res.Bindings[p.Key] = c.names[n]
	}
	return res
}

func newCluster(nodes []Node) *cluster {
	sorted := make([]*Node, 0, len(nodes))
	for i := range nodes {
		sorted = append(sorted, &nodes[i])
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	// A name listed twice is kept once (the first listed): two nodes cannot share one.
	sorted = slices.CompactFunc(sorted, func(a, b *Node) bool { return a.Name == b.Name })

	n := len(sorted)
	c := &cluster{
		names:         make([]string, n),
		labels:        make([]map[string]string, n),
		unschedulable: make([]bool, n),
		allocCPU:      make([]int64, n),
		allocMem:      make([]int64, n),
		usedCPU:       make([]int64, n),
		usedMem:       make([]int64, n),
		scoreCPU:      make([]int64, n),
		scoreMem:      make([]int64, n),
		invCPU:        make([]float64, n),
		invMem:        make([]float64, n),
		index:         make(map[string]int, n),
		owners:        map[string]*owner{},
	}
	for i, node := range sorted {
		c.names[i] = node.Name
		c.labels[i] = node.Labels
		c.unschedulable[i] = node.Unschedulable
		c.allocCPU[i] = node.Allocatable.MilliCPU
		c.allocMem[i] = node.Allocatable.Memory
		if node.Allocatable.MilliCPU > 0 {
			c.invCPU[i] = 1 / float64(node.Allocatable.MilliCPU)
		}
		if node.Allocatable.Memory > 0 {
			c.invMem[i] = 1 / float64(node.Allocatable.Memory)
		}
		c.index[node.Name] = i
	}
	return c
}

func scoreRequests(r Resources) Resources {
	if r.MilliCPU == 0 {
		r.MilliCPU = defaultMilliCPU
	}
	if r.Memory == 0 {
		r.Memory = defaultMemory
	}
	return r
}

func (c *cluster) owner(name string) *owner {
	if name == "" {
		return nil
	}
	o := c.owners[name]
	if o == nil {
		o = &owner{counts: make([]int32, len(c.names))}
		c.owners[name] = o
	}
	return o
}

func (c *cluster) place(n int, p *Pod) {
	s := scoreRequests(p.Requests)
	c.usedCPU[n] += p.Requests.MilliCPU
	c.usedMem[n] += p.Requests.Memory
	c.scoreCPU[n] += s.MilliCPU
	c.scoreMem[n] += s.Memory
	if o := c.owner(p.Owner); o != nil {
		o.counts[n]++
		o.max = max(o.max, o.counts[n])
	}
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// best returns the index of the highest-scoring feasible node, or -1.
func (c *cluster) best(p *Pod) int {
	var counts []int32
	var maxCount float64
	if p.Owner != "" {
		if o := c.owners[p.Owner]; o != nil && o.max > 0 {
			counts, maxCount = o.counts, float64(o.max)
		}
	}
	req := p.Requests
	sreq := scoreRequests(req)
	selector := p.NodeSelector
	bestNode, bestScore := -1, 0.0
	for n := range c.names {
		if c.unschedulable[n] ||
			c.allocCPU[n]-c.usedCPU[n] < req.MilliCPU ||
			c.allocMem[n]-c.usedMem[n] < req.Memory {
			continue
		}
		if len(selector) > 0 && !matches(c.labels[n], selector) {
			continue
		}
		freeCPU := float64(c.allocCPU[n]-c.scoreCPU[n]-sreq.MilliCPU) * c.invCPU[n]
		freeMem := float64(c.allocMem[n]-c.scoreMem[n]-sreq.Memory) * c.invMem[n]
		score := (max(freeCPU, 0) + max(freeMem, 0)) / 2
		if counts != nil {
			score += (maxCount - float64(counts[n])) / maxCount
		} else {
			score++
		}
		// Nodes are in name order, so a strict comparison breaks ties by name.
		if bestNode < 0 || score > bestScore {
			bestNode, bestScore = n, score
		}
	}
	return bestNode
}

// explain says why no node can take p, in kube-scheduler's words.
func (c *cluster) explain(p *Pod) string {
	if len(c.names) == 0 {
		return "0/0 nodes are available: no nodes registered"
	}
	counts := map[string]int{}
	for n := range c.names {
		switch {
		case c.unschedulable[n]:
			counts[reasonUnschedulable]++
		case len(p.NodeSelector) > 0 && !matches(c.labels[n], p.NodeSelector):
			counts[reasonSelector]++
		default:
			if c.allocCPU[n]-c.usedCPU[n] < p.Requests.MilliCPU {
				counts[reasonCPU]++
			}
			if c.allocMem[n]-c.usedMem[n] < p.Requests.Memory {
				counts[reasonMemory]++
			}
		}
	}
	reasons := make([]string, 0, len(counts))
	for reason, count := range counts {
		reasons = append(reasons, fmt.Sprintf("%d %s", count, reason))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("0/%d nodes are available: %s", len(c.names), strings.Join(reasons, ", "))
}

// RequestsOf returns what a pod with this spec requests, computed as Kubernetes
// does: a container's request for a resource is its request, or its limit when it
// sets a limit but no request; the pod requests the larger of the sum over its
// containers (plus sidecars, i.e. init containers with restartPolicy Always) and
// the largest single init container (plus the sidecars started before it); pod
// overhead is added on top.
func RequestsOf(spec *corev1.PodSpec) Resources {
	var sum, sidecars, initPeak Resources
	for i := range spec.InitContainers {
		ct := &spec.InitContainers[i]
		r := containerRequests(ct)
		if ct.RestartPolicy != nil && *ct.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = add(sidecars, r)
			initPeak = maxOf(initPeak, sidecars)
			continue
		}
		initPeak = maxOf(initPeak, add(sidecars, r))
	}
	for i := range spec.Containers {
		sum = add(sum, containerRequests(&spec.Containers[i]))
	}
	total := maxOf(add(sum, sidecars), initPeak)
	if spec.Overhead != nil {
		total.MilliCPU += spec.Overhead.Cpu().MilliValue()
		total.Memory += spec.Overhead.Memory().Value()
	}
	return total
}

func containerRequests(ct *corev1.Container) Resources {
	var r Resources
	if q, ok := ct.Resources.Requests[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	} else if q, ok := ct.Resources.Limits[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := ct.Resources.Requests[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	} else if q, ok := ct.Resources.Limits[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	return r
}

func add(a, b Resources) Resources {
	return Resources{MilliCPU: a.MilliCPU + b.MilliCPU, Memory: a.Memory + b.Memory}
}

func maxOf(a, b Resources) Resources {
	return Resources{MilliCPU: max(a.MilliCPU, b.MilliCPU), Memory: max(a.Memory, b.Memory)}
}
