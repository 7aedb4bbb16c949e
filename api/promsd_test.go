package api

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/store"
)

// scrapedPod is a running pod of Deployment web on n1 that asks to be
// scraped on 8080; change modifies it.
func scrapedPod(name, ip string, change func(*corev1.Pod)) *corev1.Pod {
	controller := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
			Labels:          map[string]string{"app": "web", "bosun.dev/track": "canary", "pod-template-hash": "abc"},
			Annotations:     map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "bosun.dev/owner": "Deployment/default/web"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Controller: &controller}},
		},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	if change != nil {
		change(p)
	}
	return p
}

func webLabels(pod string, more map[string]string) map[string]string {
	l := map[string]string{"namespace": "default", "pod": pod, "node": "n1", "deployment": "web", "track": "canary",
		"label_app": "web", "label_bosun_dev_track": "canary", "label_pod_template_hash": "abc"}
	for k, v := range more {
		l[k] = v
	}
	return l
}

func TestPromTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		pods []*corev1.Pod
		want []TargetGroup
	}{
		{"nothing to scrape is an empty list", nil, []TargetGroup{}},
		{"an annotated running pod", []*corev1.Pod{scrapedPod("web-1", "10.88.0.2", nil)},
			[]TargetGroup{{Targets: []string{"10.88.0.2:8080"}, Labels: webLabels("web-1", nil)}}},
		{"path and scheme", []*corev1.Pod{scrapedPod("web-1", "10.88.0.2", func(p *corev1.Pod) {
			p.Annotations["prometheus.io/path"] = "/stats/prometheus"
			p.Annotations["prometheus.io/scheme"] = "https"
		})}, []TargetGroup{{Targets: []string{"10.88.0.2:8080"},
			Labels: webLabels("web-1", map[string]string{"__metrics_path__": "/stats/prometheus", "__scheme__": "https"})}}},
		{"not annotated, annotated false, pending, without IP, finished: none", []*corev1.Pod{
			scrapedPod("a", "10.88.0.2", func(p *corev1.Pod) { delete(p.Annotations, "prometheus.io/scrape") }),
			scrapedPod("b", "10.88.0.3", func(p *corev1.Pod) { p.Annotations["prometheus.io/scrape"] = "false" }),
			scrapedPod("c", "", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
			scrapedPod("d", "", nil),
			scrapedPod("e", "10.88.0.4", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		}, []TargetGroup{}},
		{"invalid port annotations leave the pod out", []*corev1.Pod{
			scrapedPod("a", "10.88.0.2", func(p *corev1.Pod) { p.Annotations["prometheus.io/port"] = "http" }),
			scrapedPod("b", "10.88.0.3", func(p *corev1.Pod) { p.Annotations["prometheus.io/port"] = "0" }),
			scrapedPod("c", "10.88.0.4", func(p *corev1.Pod) { p.Annotations["prometheus.io/port"] = "65536" }),
		}, []TargetGroup{}},
		{"without a port annotation, the declared TCP ports", []*corev1.Pod{
			scrapedPod("web-1", "fd00::2", func(p *corev1.Pod) {
				delete(p.Annotations, "prometheus.io/port")
				p.Spec.Containers = []corev1.Container{
					{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}},
					{Name: "sidecar", Ports: []corev1.ContainerPort{{ContainerPort: 9090, Protocol: corev1.ProtocolTCP}, {ContainerPort: 8080}}},
				}
			}),
			scrapedPod("web-2", "10.88.0.3", func(p *corev1.Pod) { delete(p.Annotations, "prometheus.io/port") }), // no port at all
		}, []TargetGroup{{Targets: []string{"[fd00::2]:8080", "[fd00::2]:9090"}, Labels: webLabels("web-1", nil)}}},
		{"deployment from the controller reference; a standalone pod has none; no track label is empty", []*corev1.Pod{
			scrapedPod("web-1", "10.88.0.2", nil),
			scrapedPod("solo", "10.88.0.3", func(p *corev1.Pod) {
				p.OwnerReferences = nil
				delete(p.Annotations, "bosun.dev/owner")
				p.Labels = nil
			}),
			scrapedPod("job-1", "10.88.0.4", func(p *corev1.Pod) {
				p.OwnerReferences[0].Kind = "Job"
				p.Labels = nil
			}),
		}, []TargetGroup{
			{Targets: []string{"10.88.0.4:8080"}, Labels: map[string]string{"namespace": "default", "pod": "job-1", "node": "n1", "deployment": "", "track": ""}},
			{Targets: []string{"10.88.0.3:8080"}, Labels: map[string]string{"namespace": "default", "pod": "solo", "node": "n1", "deployment": "", "track": ""}},
			{Targets: []string{"10.88.0.2:8080"}, Labels: webLabels("web-1", nil)},
		}},
		{"label names sanitized; of two that collide the first by name wins", []*corev1.Pod{
			scrapedPod("web-1", "10.88.0.2", func(p *corev1.Pod) {
				p.Labels = map[string]string{"app.kubernetes.io/name": "web", "app_kubernetes_io_name": "other", "9lives": "x"}
			}),
		}, []TargetGroup{{Targets: []string{"10.88.0.2:8080"}, Labels: map[string]string{"namespace": "default", "pod": "web-1", "node": "n1",
			"deployment": "web", "track": "", "label_app_kubernetes_io_name": "web", "label_9lives": "x"}}}},
		{"sorted by namespace and name", []*corev1.Pod{
			scrapedPod("b", "10.88.0.2", func(p *corev1.Pod) { p.Labels = nil }),
			scrapedPod("a", "10.88.0.3", func(p *corev1.Pod) { p.Labels = nil; p.Namespace = "shop" }),
			scrapedPod("a", "10.88.0.4", func(p *corev1.Pod) { p.Labels = nil }),
		}, []TargetGroup{
			{Targets: []string{"10.88.0.4:8080"}, Labels: map[string]string{"namespace": "default", "pod": "a", "node": "n1", "deployment": "web", "track": ""}},
			{Targets: []string{"10.88.0.2:8080"}, Labels: map[string]string{"namespace": "default", "pod": "b", "node": "n1", "deployment": "web", "track": ""}},
			{Targets: []string{"10.88.0.3:8080"}, Labels: map[string]string{"namespace": "shop", "pod": "a", "node": "n1", "deployment": "web", "track": ""}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PromTargets(tc.pods); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPromTargetsHandler_servesHTTPSDFromTheStore: the route reads the
// store (statuses merged), answers the http_sd JSON and filters by
// namespace.
func TestPromTargetsHandler_servesHTTPSDFromTheStore(t *testing.T) {
	st := store.NewTest(t)
	ctx := context.Background()
	lead, err := st.Campaign(ctx, "replica-1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	pods := []*corev1.Pod{
		scrapedPod("web-1", "10.88.0.2", nil),
		scrapedPod("web-2", "10.88.0.3", func(p *corev1.Pod) { p.Namespace = "shop" }),
	}
	for _, p := range pods {
		op, err := store.PutPod(&corev1.Pod{ObjectMeta: p.ObjectMeta, Spec: p.Spec})
		if err != nil {
			t.Fatal(err)
		}
		if err := lead.Apply(ctx, []store.Op{op}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutPodStatus(ctx, p.Namespace, p.Name, store.PodStatus{UID: p.UID, Node: cmp.Or(p.Spec.NodeName, "n1"), Status: p.Status}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandler(t, st)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/prometheus/targets", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("code %d, content type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var got []TargetGroup
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Targets[0] != "10.88.0.2:8080" || got[1].Labels["namespace"] != "shop" {
		t.Errorf("targets = %+v", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/prometheus/targets?namespace=nowhere", nil))
	if body := rec.Body.String(); rec.Code != 200 || body != "[]\n" {
		t.Errorf("no pods: %d %q, want 200 []", rec.Code, body)
	}
}

var promLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// FuzzPromTargets: whatever labels a pod has, every label name in the
// answer is one Prometheus accepts, and each pod label is carried.
func FuzzPromTargets(f *testing.F) {
	for _, s := range []string{"app", "app.kubernetes.io/name", "9lives", "ü", "a-b", ""} {
		f.Add(s, "v")
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		p := scrapedPod("web-1", "10.88.0.2", func(p *corev1.Pod) { p.Labels = map[string]string{key: value} })
		groups := PromTargets([]*corev1.Pod{p})
		if len(groups) != 1 {
			t.Fatalf("%d groups", len(groups))
		}
		carried := false
		for name, v := range groups[0].Labels {
			if !promLabelName.MatchString(name) {
				t.Errorf("label name %q from pod label %q", name, key)
			}
			if strings.HasPrefix(name, "label_") && v == value {
				carried = true
			}
		}
		if !carried {
			t.Errorf("pod label %q=%q not carried: %v", key, value, groups[0].Labels)
		}
	})
}
