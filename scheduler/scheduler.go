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

// Node is a node as the scheduler sees it. NodeOf builds one from a
// corev1.Node.
type Node struct {
	Name        string
	Labels      map[string]string
	Allocatable Resources
	// MaxPods is how many unfinished pods the node takes (its allocatable
	// "pods"); 0 means no limit.
	MaxPods int
	// Unschedulable cordons the node: it takes only pods that tolerate
	// node.kubernetes.io/unschedulable:NoSchedule (kube-scheduler's
	// NodeUnschedulable), as daemon pods do.
	Unschedulable bool
	// Draining takes no new pod but a DaemonSet's (Pod.Daemon), whatever
	// the pod tolerates: a drain moves pods off the node, and one that
	// came back would be moved again, for ever.
	Draining bool
	// Closed takes no new pod at all, whatever it tolerates: a node that is
	// gone, kept for its grace period (its agent may never come back).
	Closed bool
	// Taints repel pods that do not tolerate them: NoSchedule and
	// NoExecute ones filter, PreferNoSchedule ones lower the score.
	Taints []corev1.Taint
	// VolumeCapacity is how many bytes of local volumes the node takes (0:
	// no limit); VolumesUsed how many are bound to it already (volumes.go).
	VolumeCapacity, VolumesUsed int64
	// ReservedPorts are the ports bosun itself listens on at the node (its
	// ingress proxy, DNS, API...: AnnotationReservedHostPorts): taken, as a
	// pod already there would take them (ports.go).
	ReservedPorts []HostPort
	// ReservedPortsErr, when set, says why the node's reserved ports
	// could not be read (NodeOf: a malformed or oversized annotation): it
	// takes no pod with a host port, which might be one of them, and says
	// so (reasonPortsUnreadable).
	ReservedPortsErr error
}

// Pod is a pod as the scheduler sees it. PodOf builds one from a pod spec.
type Pod struct {
	// Key identifies the pod in the Result, conventionally "namespace/name".
	Key string
	// Namespace and Labels are what other pods' affinity terms and spread
	// constraints select on.
	Namespace string
	Labels    map[string]string
	// Owner groups pods for spreading, e.g. "Deployment/default/web"; "" for none.
	Owner    string
	Requests Resources
	// NodeSelector lists labels a node must carry, with these values.
	NodeSelector map[string]string
	// Tolerations, Affinity and TopologySpreadConstraints are the pod
	// spec's, as Kubernetes defines them (see the package documentation
	// for what is honoured).
	Tolerations               []corev1.Toleration
	Affinity                  *corev1.Affinity
	TopologySpreadConstraints []corev1.TopologySpreadConstraint
	// HostPorts are the node ports the pod takes (ports.go).
	HostPorts []HostPort
	// NodeName, when set, means the pod is already bound: it counts as used on
	// that node and is not placed again.
	NodeName string
	// Daemon marks a DaemonSet's pod: a draining node (Node.Draining)
	// still takes it.
	Daemon bool
	// Claims are the PersistentVolumeClaims the pod uses (volumes.go).
	Claims []Claim
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

// Reasons a node is filtered out, in kube-scheduler's words; the texts
// appear in Result.Unschedulable.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonTaint         = "node(s) had untolerated taint {%s: %s}"
	reasonSelector      = "node(s) didn't match node selector"
	reasonNodeAffinity  = "node(s) didn't match Pod's node affinity/selector"
	reasonPods          = "Too many pods"
	reasonCPU           = "insufficient cpu"
	reasonMemory        = "insufficient memory"
	reasonSpread        = "node(s) didn't match pod topology spread constraints"
	reasonSpreadLabel   = "node(s) didn't match pod topology spread constraints (missing required label)"
	reasonExistingAnti  = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonPodAffinity   = "node(s) didn't match pod affinity rules"
	reasonPodAnti       = "node(s) didn't match pod anti-affinity rules"
)

// Score weights, as kube-scheduler weighs its score plugins. Each term is
// normalized to [0, 1] first.
const (
	weightTaint        = 3
	weightNodeAffinity = 2
	weightPodAffinity  = 2
	weightSpread       = 2
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
	closed             []closure        // drains and absent nodes: see Node
	hardTaints         [][]corev1.Taint // NoSchedule and NoExecute: filter
	softTaints         [][]corev1.Taint // PreferNoSchedule: score
	anySoftTaint       bool
	maxPods, pods      []int32 // maxPods 0: no limit
	allocCPU, allocMem []int64
	usedCPU, usedMem   []int64 // real requests: the filter
	scoreCPU, scoreMem []int64 // non-zero requests: the score
	invCPU, invMem     []float64
	index              map[string]int
	usedPorts          [][]HostPort // by node; nil while no pod or reserved port takes one (ports.go)
	portsUnknown       []bool       // by node: Node.ReservedPortsErr set; nil while none is
	owners             map[string]*owner

	nodeObjs []corev1.Node // name and labels, for nodeaffinity; built on first use

	// Inter-pod state (affinity.go, spread.go), set up only when some pod
	// has pod (anti-)affinity or topology spread constraints.
	inter *interPod
	// Volume state (volumes.go), set up only when some pod uses a claim.
	vol *volumeState

	r rules // the pod being placed: see rules

	// Scratch for scoring, one slot per node, reused by every pod.
	feasible []int32
	base     []float64
	extra    [4][]float64
	elig     []uint8 // spread.go
}

// Schedule places every unbound pod, in the order given, onto the best feasible
// node, accounting each placement before placing the next pod. See the package
// documentation for the filters and scores.
func Schedule(nodes []Node, pods []Pod) Result {
	c := newCluster(nodes)
	if needsInterPod(pods) {
		c.inter = newInterPod(c)
	}
	if needsVolumes(pods) {
		c.vol = newVolumeState(c, nodes, pods)
	}
	res := Result{Bindings: map[string]string{}, Unschedulable: map[string]string{}}
	for i := range pods {
		p := &pods[i]
		if p.NodeName != "" {
			if n, ok := c.index[p.NodeName]; ok {
				c.place(n, c.rules(p))
			}
		}
	}
	for i := range pods {
		p := &pods[i]
		if p.NodeName != "" {
			continue
		}
		r := c.rules(p)
		c.prepare(r)
		n := c.best(r)
		if n < 0 {
			res.Unschedulable[p.Key] = c.explain(r)
			continue
		}
		c.place(n, r)
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
		closed:        make([]closure, n),
		hardTaints:    make([][]corev1.Taint, n),
		softTaints:    make([][]corev1.Taint, n),
		maxPods:       make([]int32, n),
		pods:          make([]int32, n),
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
		switch {
		case node.Closed:
			c.closed[i] = closedAll
		case node.Draining:
			c.closed[i] = closedButDaemons
		}
		for _, t := range node.Taints {
			switch t.Effect {
			case corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute:
				c.hardTaints[i] = append(c.hardTaints[i], t)
			case corev1.TaintEffectPreferNoSchedule:
				c.softTaints[i] = append(c.softTaints[i], t)
				c.anySoftTaint = true
			}
		}
		c.maxPods[i] = int32(max(min(node.MaxPods, 1<<30), 0))
		c.allocCPU[i] = node.Allocatable.MilliCPU
		c.allocMem[i] = node.Allocatable.Memory
		if node.Allocatable.MilliCPU > 0 {
			c.invCPU[i] = 1 / float64(node.Allocatable.MilliCPU)
		}
		if node.Allocatable.Memory > 0 {
			c.invMem[i] = 1 / float64(node.Allocatable.Memory)
		}
		c.index[node.Name] = i
		c.reservePorts(i, node)
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

func (c *cluster) place(n int, r *rules) {
	p := r.pod
	s := scoreRequests(p.Requests)
	c.usedCPU[n] += p.Requests.MilliCPU
	c.usedMem[n] += p.Requests.Memory
	c.scoreCPU[n] += s.MilliCPU
	c.scoreMem[n] += s.Memory
	c.pods[n]++
	c.placePorts(r, n)
	if o := c.owner(p.Owner); o != nil {
		o.counts[n]++
		o.max = max(o.max, o.counts[n])
	}
	if c.inter != nil {
		c.inter.place(n, r)
	}
	if c.vol != nil {
		c.vol.place(p, n)
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

// failure is the first filter a node fails for a pod, in kube-scheduler's
// order: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
// PodTopologySpread, InterPodAffinity (the pod's affinity, its
// anti-affinity, then placed pods' anti-affinity).
type failure uint8

const (
	fits failure = iota
	failUnschedulable
	failTaint
	failSelector
	failNodeAffinity
	failPorts
	failPortsUnreadable
	failResources
	failSpread
	failSpreadLabel
	failPodAffinity
	failPodAnti
	failExistingAnti
)

// Resource shortfalls, reported together as kube-scheduler's
// NodeResourcesFit does.
const (
	shortPods uint8 = 1 << iota
	shortCPU
	shortMemory
)

// unschedulableTaint is what a pod tolerates to be placed on a cordoned
// node, as kube-scheduler's NodeUnschedulable filter reads it (daemon pods
// do: reconciler/daemonset.go).
var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// closure is what a node refuses whatever a pod tolerates (Node.Draining,
// Node.Closed).
type closure uint8

const (
	open closure = iota
	closedButDaemons
	closedAll
)

// check runs every filter on node n for the pod r describes and returns
// the first that fails, or fits. c.prepare(r) must have run. It is the one
// model of the filters: best uses it to choose and explain to say why not.
func (c *cluster) check(r *rules, n int) failure {
	if c.unschedulable[n] && !Tolerates(r.pod.Tolerations, &unschedulableTaint) ||
		c.closed[n] == closedAll || c.closed[n] == closedButDaemons && !r.pod.Daemon {
		return failUnschedulable
	}
	if len(c.hardTaints[n]) > 0 && untolerated(c.hardTaints[n], r.pod.Tolerations) != nil {
		return failTaint
	}
	if len(r.pod.NodeSelector) > 0 && !matches(c.labels[n], r.pod.NodeSelector) {
		if r.required != nil {
			return failNodeAffinity
		}
		return failSelector
	}
	if r.required != nil && !c.matchRequired(r, n) {
		return failNodeAffinity
	}
	if f := c.portsFree(r, n); f != fits {
		return f
	}
	if c.short(r.pod, n) != 0 {
		return failResources
	}
	if c.vol != nil && len(r.pod.Claims) > 0 {
		if f := c.vol.check(r.pod, n); f != fits {
			return f
		}
	}
	if r.interPod {
		return c.inter.check(r, n)
	}
	return fits
}

// short says which resources node n lacks for p, as kube-scheduler's
// NodeResourcesFit reports them: all at once.
func (c *cluster) short(p *Pod, n int) uint8 {
	var short uint8
	if c.maxPods[n] > 0 && c.pods[n] >= c.maxPods[n] {
		short |= shortPods
	}
	if c.allocCPU[n]-c.usedCPU[n] < p.Requests.MilliCPU {
		short |= shortCPU
	}
	if c.allocMem[n]-c.usedMem[n] < p.Requests.Memory {
		short |= shortMemory
	}
	return short
}

// best returns the index of the highest-scoring feasible node, or -1.
func (c *cluster) best(r *rules) int {
	p := r.pod
	var counts []int32
	var maxCount float64
	if p.Owner != "" {
		if o := c.owners[p.Owner]; o != nil && o.max > 0 {
			counts, maxCount = o.counts, float64(o.max)
		}
	}
	sreq := scoreRequests(p.Requests)
	base := func(n int) float64 {
		freeCPU := float64(c.allocCPU[n]-c.scoreCPU[n]-sreq.MilliCPU) * c.invCPU[n]
		freeMem := float64(c.allocMem[n]-c.scoreMem[n]-sreq.Memory) * c.invMem[n]
		score := (max(freeCPU, 0) + max(freeMem, 0)) / 2
		if counts != nil {
			score += (maxCount - float64(counts[n])) / maxCount
		} else {
			score++
		}
		return score
	}
	if !c.scoresMore(r) {
		bestNode, bestScore := -1, 0.0
		for n := range c.names {
			if c.check(r, n) != fits {
				continue
			}
			score := base(n)
			// Nodes are in name order, so a strict comparison breaks ties by name.
			if bestNode < 0 || score > bestScore {
				bestNode, bestScore = n, score
			}
		}
		return bestNode
	}

	// Scores that are normalized over the feasible nodes take two passes.
	if c.feasible == nil {
		c.feasible = make([]int32, 0, len(c.names))
		c.base = make([]float64, len(c.names))
		for i := range c.extra {
			c.extra[i] = make([]float64, len(c.names))
		}
	}
	feasible := c.feasible[:0]
	for n := range c.names {
		if c.check(r, n) != fits {
			continue
		}
		feasible = append(feasible, int32(n))
		c.base[n] = base(n)
	}
	c.feasible = feasible
	if len(feasible) == 0 {
		return -1
	}
	c.scoreExtra(r, feasible)
	bestNode, bestScore := -1, 0.0
	for _, n := range feasible {
		score := c.base[n]
		for i := range c.extra {
			score += c.extra[i][n]
		}
		if bestNode < 0 || score > bestScore {
			bestNode, bestScore = int(n), score
		}
	}
	return bestNode
}

// scoresMore reports whether any score beyond least-allocated and owner
// spreading can tell nodes apart for r.
func (c *cluster) scoresMore(r *rules) bool {
	return c.anySoftTaint || r.preferred != nil || (r.interPod && c.inter.scores(r))
}

// scoreExtra fills c.extra for the feasible nodes: each term normalized to
// [0, 1] over them, times its weight.
func (c *cluster) scoreExtra(r *rules, feasible []int32) {
	taint, nodeAff, podAff, spread := c.extra[0], c.extra[1], c.extra[2], c.extra[3]
	for _, n := range feasible {
		taint[n], nodeAff[n], podAff[n], spread[n] = 0, 0, 0, 0
	}
	if c.anySoftTaint {
		// Fewer untolerated PreferNoSchedule taints is better.
		var most float64
		for _, n := range feasible {
			taint[n] = float64(countUntolerated(c.softTaints[n], r.pod.Tolerations))
			most = max(most, taint[n])
		}
		for _, n := range feasible {
			if most > 0 {
				taint[n] = weightTaint * (most - taint[n]) / most
			} else {
				taint[n] = 0
			}
		}
	}
	if r.preferred != nil {
		// The sum of the weights of the matching terms, over the most any
		// node gets.
		var most float64
		for _, n := range feasible {
			nodeAff[n] = float64(r.preferred.Score(c.nodeObj(int(n))))
			most = max(most, nodeAff[n])
		}
		for _, n := range feasible {
			if most > 0 {
				nodeAff[n] = weightNodeAffinity * nodeAff[n] / most
			}
		}
	}
	if r.interPod {
		c.inter.score(r, feasible, podAff, spread)
	}
}

// explain says why no node can take the pod r describes, in
// kube-scheduler's words: how many nodes failed each filter (a node counts
// for the first filter it fails; for every resource it is short of).
func (c *cluster) explain(r *rules) string {
	if len(c.names) == 0 {
		return "0/0 nodes are available: no nodes registered"
	}
	counts := map[string]int{}
	for n := range c.names {
		switch f := c.check(r, n); f {
		case fits:
			// Feasible now, yet best found nothing: cannot happen.
		case failUnschedulable:
			counts[reasonUnschedulable]++
		case failTaint:
			t := untolerated(c.hardTaints[n], r.pod.Tolerations)
			counts[fmt.Sprintf(reasonTaint, t.Key, t.Value)]++
		case failSelector:
			counts[reasonSelector]++
		case failNodeAffinity:
			counts[reasonNodeAffinity]++
		case failPorts:
			counts[reasonPorts]++
		case failPortsUnreadable:
			counts[reasonPortsUnreadable]++
		case failResources:
			short := c.short(r.pod, n)
			if short&shortPods != 0 {
				counts[reasonPods]++
			}
			if short&shortCPU != 0 {
				counts[reasonCPU]++
			}
			if short&shortMemory != 0 {
				counts[reasonMemory]++
			}
		case failSpread:
			counts[reasonSpread]++
		case failSpreadLabel:
			counts[reasonSpreadLabel]++
		case failExistingAnti:
			counts[reasonExistingAnti]++
		case failPodAffinity:
			counts[reasonPodAffinity]++
		case failPodAnti:
			counts[reasonPodAnti]++
		default:
			counts[volumeReason(f)]++
		}
	}
	reasons := make([]string, 0, len(counts))
	for reason, count := range counts {
		reasons = append(reasons, fmt.Sprintf("%d %s", count, reason))
	}
	sort.Strings(reasons)
	var note string
	if c.vol != nil {
		note = c.vol.note(r.pod)
	}
	return fmt.Sprintf("0/%d nodes are available: %s%s", len(c.names), strings.Join(reasons, ", "), note)
}

// nodeObj is node n as the nodeaffinity helpers read it: name and labels.
func (c *cluster) nodeObj(n int) *corev1.Node {
	if c.nodeObjs == nil {
		c.nodeObjs = make([]corev1.Node, len(c.names))
		for i := range c.names {
			c.nodeObjs[i].Name = c.names[i]
			c.nodeObjs[i].Labels = c.labels[i]
		}
	}
	return &c.nodeObjs[n]
}
