package dns

import (
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
)

// picks are random sources for answer that make weighted answers
// deterministic: the first group, the last, and ones between.
var picks = []func(n uint64) uint64{
	func(uint64) uint64 { return 0 },
	func(n uint64) uint64 { return n - 1 },
	func(n uint64) uint64 { return n / 3 },
	func(n uint64) uint64 { return n * 2 / 3 },
}

// sameAnswers fails t unless got and want have the same names, the same
// skipped objects, and the same answer to A, AAAA, SRV and ANY of every name
// (weighted answers: the same for each of picks).
func sameAnswers(t *testing.T, step string, got, want *Index) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Errorf("%s: %d names, want %d: extra %v, missing %v", step, got.Len(), want.Len(),
			missingNames(want, got), missingNames(got, want))
		return
	}
	if !slices.Equal(got.Skipped, want.Skipped) {
		t.Errorf("%s: skipped %q, want %q", step, got.Skipped, want.Skipped)
	}
	for name := range want.all() {
		for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypeANY, mdns.TypeSOA} {
			for i, rnd := range picks {
				g, w := got.answer(query(name, qt), rnd), want.answer(query(name, qt), rnd)
				if g.Rcode != w.Rcode || !slices.Equal(rrStrings(g.Answer), rrStrings(w.Answer)) ||
					!slices.Equal(rrStrings(g.Extra), rrStrings(w.Extra)) || !slices.Equal(rrStrings(g.Ns), rrStrings(w.Ns)) {
					t.Errorf("%s: %s %s (pick %d):\n got %s\nwant %s", step, name, mdns.TypeToString[qt], i, g, w)
				}
			}
		}
	}
}

func missingNames(from, in *Index) []string {
	var out []string
	for name := range from.all() {
		if _, ok := in.lookup(name); !ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func rrStrings(rrs []mdns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

// cluster is the property test's model: services and immutable pods, changed
// as the cache changes them (a changed pod is a new pointer).
type cluster struct {
	r        *rand.Rand
	services []corev1.Service
	pods     []*corev1.Pod
	nextPod  int
	nextUID  int
}

var (
	propNamespaces = []string{"prod", "staging", "Prod"}
	propSvcNames   = []string{"web", "Web", "api", "db", "Bad.Name", "x"}
	propApps       = []string{"web", "api", "db"}
	propIPs        = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "fd00::1", "fd00::2", "", "not-an-ip"}
	// Hostnames that collide: shared by pods, spelt in another case, read
	// as another pod's dashed address, not a label at all.
	propHostnames  = []string{"", "", "db-0", "db-1", "DB-0", "10-0-0-2", "fd00--1", "not.a.label"}
	propClusterIPs = [][]string{{""}, {""}, {"None"}, {"10.96.0.1"}, {"10.96.0.2"}, {"10.96.0.1", "fd00:96::1"}, {"", "10.96.0.3"}, {"10.96.0.300"}}
)

// name sets a random hostname and subdomain (a Service name, or another).
func (c *cluster) name(p *corev1.Pod) {
	p.Spec.Hostname = c.pick(propHostnames)
	p.Spec.Subdomain = c.pick(append([]string{"", "other"}, propSvcNames...))
}

// clusterIP sets a random clusterIP: none yet, None, an address, two
// addresses (clusterIPs), not an address.
func (c *cluster) clusterIP(svc *corev1.Service) {
	ips := propClusterIPs[c.r.IntN(len(propClusterIPs))]
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ips[0], nil
	if len(ips) > 1 {
		svc.Spec.ClusterIPs = ips[1:]
		if ips[0] != "" {
			svc.Spec.ClusterIPs = ips
		}
	}
}

func (c *cluster) pick(xs []string) string { return xs[c.r.IntN(len(xs))] }

func (c *cluster) labels() map[string]string {
	l := map[string]string{"app": c.pick(propApps)}
	if c.r.IntN(2) == 0 {
		l["tier"] = c.pick([]string{"front", "back"})
	}
	if c.r.IntN(3) != 0 {
		l[kube.LabelTrack] = c.pick([]string{"stable", "canary", "stable"})
	}
	return l
}

// weigh sets a random bosun.dev/weight (or none), keeping other annotations.
func (c *cluster) weigh(p *corev1.Pod) {
	p.Annotations = maps.Clone(p.Annotations)
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if w := c.pick([]string{"", "0", "10", "10", "90", "90", "90", "x"}); w != "" {
		p.Annotations[kube.AnnotationWeight] = w
	} else {
		delete(p.Annotations, kube.AnnotationWeight)
	}
}

func (c *cluster) newPod() *corev1.Pod {
	c.nextPod++
	c.nextUID++
	p := readyPod(c.pick(propNamespaces[:2]), "pod-"+strconv.Itoa(c.nextPod), c.pick(propIPs), c.labels())
	p.UID = types.UID("uid-" + strconv.Itoa(c.nextUID))
	if c.r.IntN(3) == 0 {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "web", ContainerPort: int32(8000 + c.r.IntN(3))}}
	}
	if c.r.IntN(4) == 0 {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	if c.r.IntN(2) == 0 {
		c.name(&p)
	}
	if c.r.IntN(4) != 0 {
		c.weigh(&p)
	}
	return &p
}

func (c *cluster) newService(ns, name string) corev1.Service {
	var sel map[string]string
	switch c.r.IntN(5) {
	case 0: // no selector: no endpoints
	case 1:
		sel = map[string]string{"app": c.pick(propApps), "tier": c.pick([]string{"front", "back"})}
	default:
		sel = map[string]string{"app": c.pick(propApps)}
	}
	ports := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}}
	switch c.r.IntN(4) {
	case 0:
		ports = append(ports, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")})
	case 1:
		ports = append(ports, corev1.ServicePort{Name: "metrics", Port: 9090}, corev1.ServicePort{Port: 81})
	case 2:
		ports = append(ports, corev1.ServicePort{Name: "Bad_Port", Port: 82}, corev1.ServicePort{Name: "grpc", Port: 9000, TargetPort: intstr.FromInt32(9001)})
	}
	svc := service(ns, name, sel, ports...)
	svc.Spec.PublishNotReadyAddresses = c.r.IntN(3) == 0
	c.clusterIP(&svc)
	return svc
}

// change applies one random change and returns what it did.
func (c *cluster) change() string {
	i := 0
	if len(c.pods) > 0 {
		i = c.r.IntN(len(c.pods))
	}
	replace := func(f func(p *corev1.Pod)) {
		p := c.pods[i].DeepCopy()
		f(p)
		c.pods = slices.Clone(c.pods)
		c.pods[i] = p
	}
	switch op := c.r.IntN(23); {
	case op == 0 || op >= 21 || len(c.pods) == 0: // pods come more often than they go: groups form
		p := c.newPod()
		c.pods = append(slices.Clone(c.pods), p)
		return "add pod " + p.Name
	case op == 1:
		name := c.pods[i].Name
		c.pods = slices.Delete(slices.Clone(c.pods), i, i+1)
		return "remove pod " + name
	case op <= 4:
		replace(func(p *corev1.Pod) {
			if kubeReady := p.Status.Conditions[0].Status == corev1.ConditionTrue; kubeReady {
				p.Status.Conditions[0].Status = corev1.ConditionFalse
			} else {
				p.Status.Conditions[0].Status = corev1.ConditionTrue
			}
		})
		return "flip ready " + c.pods[i].Name
	case op == 5:
		replace(func(p *corev1.Pod) { p.Labels = c.labels() })
		return "relabel " + c.pods[i].Name
	case op == 6:
		replace(func(p *corev1.Pod) { p.Status.PodIP = c.pick(propIPs) })
		return "new IP " + c.pods[i].Name
	case op == 7:
		replace(func(p *corev1.Pod) {
			now := metav1.Unix(1700000000, 0)
			p.DeletionTimestamp = &now
		})
		return "deleting " + c.pods[i].Name
	case op == 8:
		replace(func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
		return "finished " + c.pods[i].Name
	case op == 9:
		replace(func(p *corev1.Pod) {
			p.Annotations = maps.Clone(p.Annotations)
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations["n"] = strconv.Itoa(c.r.IntN(100))
		})
		return "annotate " + c.pods[i].Name // no DNS change
	case op == 19:
		replace(c.weigh)
		return "weigh " + c.pods[i].Name + " " + c.pods[i].Annotations[kube.AnnotationWeight]
	case op == 20:
		replace(func(p *corev1.Pod) {
			p.Labels = maps.Clone(p.Labels)
			p.Labels[kube.LabelTrack] = c.pick([]string{"stable", "canary"})
		})
		return "track " + c.pods[i].Name + " " + c.pods[i].Labels[kube.LabelTrack]
	case op == 10:
		// The pre-pointer cache: every pod is a fresh copy.
		pods := make([]*corev1.Pod, len(c.pods))
		for j, p := range c.pods {
			cp := *p
			pods[j] = &cp
		}
		c.pods = pods
		return "copy every pod"
	case op == 11:
		c.pods = slices.Clone(c.pods)
		c.r.Shuffle(len(c.pods), func(a, b int) { c.pods[a], c.pods[b] = c.pods[b], c.pods[a] })
		return "reorder pods"
	case op == 12:
		ns, name := c.pick(propNamespaces), c.pick(propSvcNames)
		for _, s := range c.services {
			if s.Namespace == ns && s.Name == name {
				return "nothing"
			}
		}
		c.services = append(slices.Clone(c.services), c.newService(ns, name))
		if c.r.IntN(2) == 0 { // services in a new position
			c.r.Shuffle(len(c.services), func(a, b int) { c.services[a], c.services[b] = c.services[b], c.services[a] })
		}
		return "add service " + ns + "/" + name
	case op == 13:
		if len(c.services) == 0 {
			return "nothing"
		}
		j := c.r.IntN(len(c.services))
		name := c.services[j].Name
		c.services = slices.Delete(slices.Clone(c.services), j, j+1)
		return "remove service " + name
	case op == 14 || op == 15:
		replace(func(p *corev1.Pod) { c.name(p) })
		return "rename " + c.pods[i].Name + " " + c.pods[i].Spec.Hostname + "." + c.pods[i].Spec.Subdomain
	case op == 16:
		if len(c.services) == 0 {
			return "nothing"
		}
		j := c.r.IntN(len(c.services))
		c.services = slices.Clone(c.services)
		svc := c.services[j].DeepCopy()
		c.clusterIP(svc)
		c.services[j] = *svc
		return "clusterIP " + svc.Namespace + "/" + svc.Name + " " + svc.Spec.ClusterIP + " " + strings.Join(svc.Spec.ClusterIPs, ",")
	default:
		if len(c.services) == 0 {
			return "nothing"
		}
		j := c.r.IntN(len(c.services))
		c.services = slices.Clone(c.services)
		old := c.services[j]
		c.services[j] = c.newService(old.Namespace, old.Name)
		return "change service " + old.Namespace + "/" + old.Name
	}
}

// TestBuilder_updateAnswersAsBuildIndex applies random changes and compares
// Builder.Update with BuildIndex of the same input after each, answer by
// answer; every Index returned earlier must keep its answers.
func TestBuilder_updateAnswersAsBuildIndex(t *testing.T) {
	weightedSteps := 0 // steps whose index has weighted answers
	defer func() {
		t.Logf("%d steps had weighted answers", weightedSteps)
		if !t.Failed() && weightedSteps < 100 {
			t.Errorf("only %d steps had weighted answers: the model does not exercise them", weightedSteps)
		}
	}()
	for seed := range uint64(40) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			c := &cluster{r: rand.New(rand.NewPCG(seed, 7))}
			b := NewBuilder("Cluster.Local", WithTTL(9))
			var prevGot, prevWant *Index
			for step := range 300 {
				what := c.change()
				label := fmt.Sprintf("step %d (%s)", step, what)
				if c.r.IntN(50) == 0 {
					b.Reset()
				}
				got, stats := b.Update(c.services, c.pods)
				want := BuildIndex("Cluster.Local", c.services, c.pods, WithTTL(9))
				sameAnswers(t, label, got, want)
				if hasWeighted(want) {
					weightedSteps++
				}
				if prevGot != nil {
					sameAnswers(t, label+": previous index", prevGot, prevWant)
				}
				if strings.HasPrefix(what, "annotate") && !stats.Full && stats.Recomputed != 0 {
					t.Errorf("%s: recomputed %d services", label, stats.Recomputed)
				}
				if t.Failed() {
					t.FailNow()
				}
				prevGot, prevWant = got, want
			}
		})
	}
}

// TestBuilder_recomputesOnlyChangedServices pins what the incremental path
// buys: one pod turning Ready recomputes its Service only, and an unchanged
// input returns the same Index.
func TestBuilder_recomputesOnlyChangedServices(t *testing.T) {
	services, pods := scaleCluster(20, 5)
	b := NewBuilder("cluster.local")
	first, stats := b.Update(services, pods)
	if !stats.Full || stats.Recomputed != 20 {
		t.Fatalf("first update: %+v, want full, 20 recomputed", stats)
	}
	again, stats := b.Update(services, pods)
	if again != first || stats.Recomputed != 0 || stats.PodsChanged != 0 {
		t.Fatalf("same input: %+v, same index %v; want nothing recomputed", stats, again == first)
	}
	pods = slices.Clone(pods)
	p := notReadyPtr(pods[7])
	pods[7] = p
	ix, stats := b.Update(services, pods)
	if stats.Full || stats.Recomputed != 1 || stats.PodsChanged != 1 {
		t.Fatalf("one pod unready: %+v, want 1 service recomputed", stats)
	}
	sameAnswers(t, "one pod unready", ix, BuildIndex("cluster.local", services, pods))
	// Names of the other services are shared, not copied.
	other := "app-3.default.svc.cluster.local."
	if e, _ := ix.lookup(other); e == nil || e != must(first.lookup(other)) {
		t.Errorf("%s was recomputed", other)
	}
}

// scaleCluster is the scale test's shape: nSvc Services of perSvc ready pods
// each, all in one namespace.
func scaleCluster(nSvc, perSvc int) ([]corev1.Service, []*corev1.Pod) {
	var services []corev1.Service
	var pods []*corev1.Pod
	ip := 0
	for s := range nSvc {
		name := "app-" + strconv.Itoa(s)
		sel := map[string]string{"app": name}
		services = append(services, service("default", name, sel, corev1.ServicePort{Name: "http", Port: 80}))
		for p := range perSvc {
			ip++
			addr := fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255)
			pod := readyPod("default", name+"-"+strconv.Itoa(p), addr, map[string]string{"app": name, "pod-template-hash": "abc"})
			pods = append(pods, &pod)
		}
	}
	return services, pods
}

func notReadyPtr(p *corev1.Pod) *corev1.Pod {
	cp := notReady(*p.DeepCopy())
	return &cp
}

func readyPtr(p *corev1.Pod) *corev1.Pod {
	cp := p.DeepCopy()
	cp.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	return cp
}

func hasWeighted(ix *Index) bool {
	for name := range ix.all() {
		if e, _ := ix.lookup(name); e.wa != nil || e.waaaa != nil {
			return true
		}
	}
	return false
}

// all yields every name of ix.
func (ix *Index) all() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range ix.names {
			for name := range m {
				if !yield(name) {
					return
				}
			}
		}
	}
}

func must(e *entry, ok bool) *entry {
	if !ok {
		panic("no such name")
	}
	return e
}
