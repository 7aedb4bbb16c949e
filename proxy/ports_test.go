package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func svcOf(name, clusterIP string, sel map[string]string, ports ...corev1.ServicePort) corev1.Service {
	return corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Selector: sel, Ports: ports, Type: corev1.ServiceTypeClusterIP},
	}
}

func svcTCPPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

type podOpt func(*corev1.Pod)

func podOf(name, ip string, labels map[string]string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

func weightAnn(w string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationWeight: w} }
}

func httpPort(port int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = port }
}

func noPorts(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }

func endpointAt(ip string, port uint16) Endpoint {
	return Endpoint{IP: netip.MustParseAddr(ip), Port: port}
}

var webSel = map[string]string{"app": "web"}

func podLabels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestPorts(t *testing.T) {
	vip := netip.MustParseAddr("10.96.0.10")
	named := intstr.FromString("http")
	tests := []struct {
		name     string
		services []corev1.Service
		pods     []*corev1.Pod
		want     []ServicePort
		skipped  []string
	}{{
		name:     "no ClusterIP yet, headless: no ports",
		services: []corev1.Service{svcOf("a", "", webSel, svcTCPPort("", 80, named)), svcOf("b", "None", webSel, svcTCPPort("", 80, named))},
		pods:     []*corev1.Pod{podOf("w1", "10.88.0.2", webSel)},
	}, {
		name:     "named target port resolved per pod; a pod without the name is left out; not ready left out",
		services: []corev1.Service{svcOf("web", "10.96.0.10", webSel, svcTCPPort("http", 80, named))},
		pods: []*corev1.Pod{
			podOf("w3", "10.88.0.4", webSel),
			podOf("w1", "10.88.0.2", webSel, httpPort(9090)),
			podOf("w2", "10.88.0.3", webSel, noPorts),
			podOf("w4", "10.88.0.5", webSel, notReady),
			podOf("other", "10.88.0.6", podLabels("app", "db")),
		},
		want: []ServicePort{{
			Namespace: "default", Name: "web", PortName: "http", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80,
			Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 9090), endpointAt("10.88.0.4", 8080)}}},
		}},
	}, {
		name:     "no endpoints: the port is there without groups",
		services: []corev1.Service{svcOf("web", "10.96.0.10", webSel, svcTCPPort("", 80, intstr.FromInt32(8080)))},
		pods:     []*corev1.Pod{podOf("w1", "10.88.0.2", webSel, notReady)},
		want: []ServicePort{{
			Namespace: "default", Name: "web", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80,
		}},
	}, {
		name:     "unset target port is the service port; UDP; one entry per port",
		services: []corev1.Service{svcOf("dns", "10.96.0.10", webSel, svcTCPPort("tcp", 53, intstr.IntOrString{}), corev1.ServicePort{Name: "udp", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353)})},
		pods:     []*corev1.Pod{podOf("w1", "10.88.0.2", webSel)},
		want: []ServicePort{
			{Namespace: "default", Name: "dns", PortName: "tcp", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 53, Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 53)}}}},
			{Namespace: "default", Name: "dns", PortName: "udp", Protocol: corev1.ProtocolUDP, ClusterIP: vip, Port: 53, Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 5353)}}}},
		},
	}, {
		name:     "groups by track, weight from the annotation, the smallest when pods disagree, absent or invalid 0",
		services: []corev1.Service{svcOf("web", "10.96.0.10", webSel, svcTCPPort("", 80, named))},
		pods: []*corev1.Pod{
			podOf("s1", "10.88.0.2", podLabels("app", "web", LabelTrack, "stable"), weightAnn("90")),
			podOf("s2", "10.88.0.3", podLabels("app", "web", LabelTrack, "stable"), weightAnn("80")),
			podOf("c1", "10.88.0.4", podLabels("app", "web", LabelTrack, "canary"), weightAnn("10")),
			podOf("x1", "10.88.0.5", webSel, weightAnn("-3")),
			podOf("x2", "10.88.0.6", webSel),
		},
		want: []ServicePort{{
			Namespace: "default", Name: "web", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80,
			Groups: []Group{
				{Name: "", Weight: 0, Endpoints: []Endpoint{endpointAt("10.88.0.5", 8080), endpointAt("10.88.0.6", 8080)}},
				{Name: "canary", Weight: 10, Endpoints: []Endpoint{endpointAt("10.88.0.4", 8080)}},
				{Name: "stable", Weight: 80, Endpoints: []Endpoint{endpointAt("10.88.0.2", 8080), endpointAt("10.88.0.3", 8080)}},
			},
		}},
	}, {
		name: "node port for type NodePort only; ClientIP affinity with its default and its timeout",
		services: func() []corev1.Service {
			np := svcOf("np", "10.96.0.10", webSel, corev1.ServicePort{Port: 80, NodePort: 30080, TargetPort: named})
			np.Spec.Type = corev1.ServiceTypeNodePort
			np.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			cip := svcOf("plain", "10.96.0.11", webSel, corev1.ServicePort{Port: 80, NodePort: 30081, TargetPort: named})
			cip.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			cip.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(int32(60))}}
			return []corev1.Service{np, cip}
		}(),
		pods: []*corev1.Pod{podOf("w1", "10.88.0.2", webSel)},
		want: []ServicePort{
			{Namespace: "default", Name: "np", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80, NodePort: 30080, AffinityTimeout: 3 * time.Hour,
				Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 8080)}}}},
			{Namespace: "default", Name: "plain", Protocol: corev1.ProtocolTCP, ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, AffinityTimeout: time.Minute,
				Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 8080)}}}},
		},
	}, {
		name:     "the same address and port twice (one pod under two keys) is one endpoint; other namespaces and deleting pods are not endpoints",
		services: []corev1.Service{svcOf("web", "10.96.0.10", webSel, svcTCPPort("", 80, named))},
		pods: []*corev1.Pod{
			podOf("w1", "10.88.0.2", webSel), podOf("w1", "10.88.0.2", webSel),
			podOf("w2", "10.88.0.3", webSel, func(p *corev1.Pod) { p.Namespace = "other" }),
			podOf("w3", "10.88.0.4", webSel, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
			podOf("w4", "fd00::1", webSel),
		},
		want: []ServicePort{{
			Namespace: "default", Name: "web", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80,
			Groups: []Group{{Endpoints: []Endpoint{endpointAt("10.88.0.2", 8080)}}},
		}},
	}, {
		name: "a port name twice, a VIP and port taken by an earlier Service, a node port taken: left out and said",
		services: func() []corev1.Service {
			a := svcOf("a", "10.96.0.10", webSel, svcTCPPort("", 80, named), svcTCPPort("", 81, named))
			b := svcOf("b", "10.96.0.10", webSel, svcTCPPort("x", 80, named), svcTCPPort("y", 82, named))
			c := svcOf("c", "10.96.0.11", webSel, corev1.ServicePort{Name: "x", Port: 80, NodePort: 30080, TargetPort: named},
				corev1.ServicePort{Name: "y", Port: 81, NodePort: 30080, TargetPort: named},
				corev1.ServicePort{Name: "z", Port: 82, NodePort: 30080, TargetPort: named, Protocol: corev1.ProtocolUDP})
			c.Spec.Type = corev1.ServiceTypeNodePort
			return []corev1.Service{a, b, c}
		}(),
		want: []ServicePort{
			{Namespace: "default", Name: "a", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 80},
			{Namespace: "default", Name: "b", PortName: "y", Protocol: corev1.ProtocolTCP, ClusterIP: vip, Port: 82},
			{Namespace: "default", Name: "c", PortName: "x", Protocol: corev1.ProtocolTCP, ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30080},
			{Namespace: "default", Name: "c", PortName: "z", Protocol: corev1.ProtocolUDP, ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 82, NodePort: 30080},
		},
		skipped: []string{
			`default/a: port ""/TCP is declared twice`,
			`default/b: 10.96.0.10:80/TCP is also default/a's`,
			`default/c: node port 30080/TCP is also default/c's`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := Ports(tt.services, tt.pods)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Ports:\n got %+v\nwant %+v", got, tt.want)
			}
			if !slices.Equal(skipped, tt.skipped) {
				t.Errorf("skipped:\n got %q\nwant %q", skipped, tt.skipped)
			}
			b := NewPortsBuilder()
			inc, stats := b.Update(tt.services, tt.pods)
			if !reflect.DeepEqual(inc, got) || !slices.Equal(stats.Skipped, skipped) {
				t.Errorf("PortsBuilder.Update:\n got %+v %q\nwant %+v", inc, stats.Skipped, got)
			}
			if !stats.Full || stats.Ports != len(got) {
				t.Errorf("stats %+v; want Full and %d ports", stats, len(got))
			}
		})
	}
}

// world is a random cluster that changes one step at a time, as the
// store's cache publishes it: a changed pod or Service is a new value,
// never modified in place.
type world struct {
	rng      *rand.Rand
	services []corev1.Service
	pods     []*corev1.Pod
	seq      int
}

var apps = []string{"web", "api", "db", "cache"}

func (w *world) randomService(name string) corev1.Service {
	r := w.rng
	ns := []string{"default", "other"}[r.IntN(2)]
	sel := map[string]string{"app": apps[r.IntN(len(apps))]}
	if r.IntN(4) == 0 {
		sel[LabelTrack] = "canary"
	}
	if r.IntN(10) == 0 {
		sel = nil
	}
	ip := fmt.Sprintf("10.96.0.%d", r.IntN(250)+1)
	switch r.IntN(8) {
	case 0:
		ip = ""
	case 1:
		ip = corev1.ClusterIPNone
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, Selector: sel, Type: corev1.ServiceTypeClusterIP, PublishNotReadyAddresses: r.IntN(8) == 0},
	}
	if r.IntN(3) == 0 {
		svc.Spec.Type = corev1.ServiceTypeNodePort
	}
	if r.IntN(3) == 0 {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		if r.IntN(2) == 0 {
			svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(int32(r.IntN(100)))}}
		}
	}
	for i := range r.IntN(3) + 1 {
		sp := corev1.ServicePort{Name: "p" + strconv.Itoa(i), Port: int32(80 + i), Protocol: []corev1.Protocol{"", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}[r.IntN(4)]}
		switch r.IntN(3) {
		case 0:
			sp.TargetPort = intstr.FromString([]string{"http", "dns", "metrics"}[r.IntN(3)])
		case 1:
			sp.TargetPort = intstr.FromInt32(int32(8000 + r.IntN(3)))
		}
		if r.IntN(2) == 0 {
			sp.NodePort = int32(30000 + r.IntN(100))
		}
		svc.Spec.Ports = append(svc.Spec.Ports, sp)
	}
	return svc
}

func (w *world) randomPod(name string) *corev1.Pod {
	r := w.rng
	ns := []string{"default", "other"}[r.IntN(2)]
	p := podOf(name, fmt.Sprintf("10.88.%d.%d", r.IntN(2), r.IntN(20)+1), map[string]string{"app": apps[r.IntN(len(apps))]})
	p.Namespace = ns
	if r.IntN(3) == 0 {
		p.Labels[LabelTrack] = []string{"stable", "canary"}[r.IntN(2)]
	}
	if r.IntN(3) == 0 {
		p.Annotations = map[string]string{AnnotationWeight: []string{"0", "10", "90", "x"}[r.IntN(4)]}
	}
	if r.IntN(4) == 0 {
		notReady(p)
	}
	if r.IntN(10) == 0 {
		p.Status.PodIP = ""
	}
	if r.IntN(10) == 0 {
		p.Status.Phase = corev1.PodSucceeded
	}
	if r.IntN(10) == 0 {
		p.DeletionTimestamp = &metav1.Time{}
	}
	c := &p.Spec.Containers[0]
	c.Ports = nil
	for _, n := range []string{"http", "dns", "metrics"} {
		if r.IntN(2) == 0 {
			c.Ports = append(c.Ports, corev1.ContainerPort{Name: n, ContainerPort: int32(9000 + r.IntN(5)), Protocol: []corev1.Protocol{"", corev1.ProtocolUDP}[r.IntN(2)]})
		}
	}
	return p
}

// step makes one random change.
func (w *world) step() string {
	r := w.rng
	w.seq++
	name := strconv.Itoa(w.seq)
	switch n := r.IntN(100); {
	case n < 35 && len(w.pods) > 0: // a pod changes: a new pointer
		i := r.IntN(len(w.pods))
		np := w.randomPod(w.pods[i].Name)
		if r.IntN(2) == 0 { // only readiness or address: what happens most
			c := *w.pods[i]
			c.Status = *w.pods[i].Status.DeepCopy()
			c.Status.Conditions[0].Status = []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse}[r.IntN(2)]
			np = &c
		}
		w.pods = slices.Clone(w.pods)
		w.pods[i] = np
		return "change pod " + np.Name
	case n < 55:
		w.pods = slices.Insert(slices.Clone(w.pods), r.IntN(len(w.pods)+1), w.randomPod("p"+name))
		return "add pod"
	case n < 70 && len(w.pods) > 0:
		i := r.IntN(len(w.pods))
		w.pods = slices.Delete(slices.Clone(w.pods), i, i+1)
		return "remove pod"
	case n < 78 && len(w.services) > 0:
		i := r.IntN(len(w.services))
		w.services = slices.Clone(w.services)
		w.services[i] = w.randomService(w.services[i].Name)
		return "change service"
	case n < 86:
		w.services = slices.Insert(slices.Clone(w.services), r.IntN(len(w.services)+1), w.randomService("s"+name))
		return "add service"
	case n < 90 && len(w.services) > 0:
		i := r.IntN(len(w.services))
		w.services = slices.Delete(slices.Clone(w.services), i, i+1)
		return "remove service"
	case n < 94:
		// Every pod copied: new pointers, same content.
		pods := make([]*corev1.Pod, len(w.pods))
		for i, p := range w.pods {
			c := *p
			pods[i] = &c
		}
		w.pods = pods
		return "copy every pod"
	case n < 97:
		w.services = slices.Clone(w.services) // a new list, the same Services
		return "copy the service list"
	}
	return "nothing"
}

// TestPortsBuilder_equalsPorts: after every step of random changes, the
// incremental result equals the one computed from nothing.
func TestPortsBuilder_equalsPorts(t *testing.T) {
	for seed := range uint64(40) {
		w := &world{rng: rand.New(rand.NewPCG(seed, 8))}
		for range 60 { // a cluster to start from
			w.step()
		}
		b := NewPortsBuilder()
		var history []string
		for i := range 300 {
			what := w.step()
			history = append(history, what)
			if i == 150 {
				b.Reset()
			}
			got, stats := b.Update(w.services, w.pods)
			want, skipped := Ports(w.services, w.pods)
			if !reflect.DeepEqual(got, want) || !slices.Equal(stats.Skipped, skipped) {
				t.Fatalf("seed %d, step %d (%v): incremental\n%+v\nfrom scratch\n%+v", seed, i, history[max(0, len(history)-5):], got, want)
			}
			eps := 0
			for _, sp := range want {
				for _, g := range sp.Groups {
					eps += len(g.Endpoints)
				}
			}
			if stats.Ports != len(want) || stats.Endpoints != eps {
				t.Fatalf("seed %d, step %d: stats %+v; want %d ports, %d endpoints", seed, i, stats, len(want), eps)
			}
		}
	}
}

// TestPortsBuilder_recomputesOnlyWhatChanged: one pod turning ready
// recomputes the one Service that selects it, and the others' ports are
// the same values as before.
func TestPortsBuilder_recomputesOnlyWhatChanged(t *testing.T) {
	services, pods := bigCluster(50, 4)
	b := NewPortsBuilder()
	first, stats := b.Update(services, pods)
	if !stats.Full || stats.Recomputed != 50 || stats.Ports != 50 || stats.Endpoints != 50*4-50 {
		t.Fatalf("first update: %+v", stats)
	}
	same, stats := b.Update(services, pods)
	if stats.Recomputed != 0 || stats.PodsChanged != 0 || &same[0] != &first[0] {
		t.Fatalf("update without a change: %+v (a new result: %v)", stats, &same[0] != &first[0])
	}
	pods = slices.Clone(pods)
	c := *pods[7] // svc-0001's last pod, not ready
	c.Status = *c.Status.DeepCopy()
	c.Status.Conditions[0].Status = corev1.ConditionTrue
	pods[7] = &c
	next, stats := b.Update(services, pods)
	if stats.Full || stats.Recomputed != 1 || stats.Changed != 1 || stats.PodsChanged != 2 || stats.Endpoints != 50*4-49 ||
		!slices.Equal(stats.Which, []string{"default/svc-0001"}) {
		t.Fatalf("one pod ready: %+v", stats)
	}
	// A pod changed in a way the rules do not see (its restart count): the
	// result is the same slice.
	pods = slices.Clone(pods)
	c2 := *pods[7]
	c2.Status = *c2.Status.DeepCopy()
	c2.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 1}}
	pods[7] = &c2
	again, stats := b.Update(services, pods)
	if stats.Recomputed != 1 || stats.Changed != 0 || &again[0] != &next[0] {
		t.Fatalf("a change the rules do not see: %+v (a new result: %v)", stats, &again[0] != &next[0])
	}
	for i := range next {
		changed := !reflect.DeepEqual(next[i], first[i])
		if changed != (i == 1) {
			t.Errorf("port %d (%s) changed: %v", i, next[i].Key(), changed)
		}
	}
}

// bigCluster is nsvc Services in one namespace with npod pods each, the
// last pod of each not ready.
func bigCluster(nsvc, npod int) ([]corev1.Service, []*corev1.Pod) {
	var services []corev1.Service
	var pods []*corev1.Pod
	for i := range nsvc {
		app := fmt.Sprintf("svc-%04d", i)
		services = append(services, svcOf(app, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), map[string]string{"app": app},
			svcTCPPort("http", 80, intstr.FromString("http"))))
		for j := range npod {
			var opts []podOpt
			if j == npod-1 {
				opts = append(opts, notReady)
			}
			n := i*npod + j
			pods = append(pods, podOf(fmt.Sprintf("%s-%d", app, j), fmt.Sprintf("10.%d.%d.%d", 88+n/62500, n/250%250, n%250+1),
				map[string]string{"app": app, "pod-template-hash": "abc"}, opts...))
		}
	}
	return services, pods
}

// BenchmarkPortsBuilder_onePodReady: one pod turns ready among 1,000
// Services x 10 pods (the cache publishes a new list with one new pod).
func BenchmarkPortsBuilder_onePodReady(b *testing.B) {
	services, pods := bigCluster(1000, 10)
	pb := NewPortsBuilder()
	pb.Update(services, pods)
	orig, ready := slices.Clone(pods), make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		c := *p
		c.Status = *p.Status.DeepCopy()
		c.Status.Conditions[0].Status = corev1.ConditionTrue
		ready[i] = &c
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// The last pod of one Service turns ready, or back. The cache
		// would publish a new list; the builder keeps none of its input.
		k := (i%1000)*10 + 9
		if i/1000%2 == 0 {
			pods[k] = ready[k]
		} else {
			pods[k] = orig[k]
		}
		if _, st := pb.Update(services, pods); st.Recomputed != 1 {
			b.Fatalf("recomputed %d", st.Recomputed)
		}
	}
}

// BenchmarkPorts_full: every port of 1,000 Services x 10 pods from nothing.
func BenchmarkPorts_full(b *testing.B) {
	services, pods := bigCluster(1000, 10)
	b.ReportAllocs()
	for b.Loop() {
		NewPortsBuilder().Update(services, pods)
	}
}
