package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPrintDaemonSets_kubectlColumns(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ds := appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "logging", Name: "shipper", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shipper"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"logs": "yes"},
				Containers:   []corev1.Container{{Name: "ship", Image: "example/shipper:2"}},
			}},
		},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1, NumberAvailable: 2},
	}
	raw, _ := json.Marshal(map[string]any{"items": []appsv1.DaemonSet{ds}})
	var b bytes.Buffer
	if err := printTable(&b, kinds["ds"], raw, true, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", b.String())
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAMESPACE NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR" {
		t.Errorf("header = %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "logging shipper 3 3 2 1 2 logs=yes 2h ship example/shipper:2 app=shipper" {
		t.Errorf("row = %q", got)
	}
}

// TestPrintDaemonSets_wideSelectorKeepsExpressions: the wide SELECTOR
// column is kubectl's, matchExpressions included.
func TestPrintDaemonSets_wideSelectorKeepsExpressions(t *testing.T) {
	ds := appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "logs"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "logs"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"edge", "infra"}}}},
	}}
	raw, err := json.Marshal(map[string]any{"items": []appsv1.DaemonSet{ds}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printDaemonSets(&out, raw, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if want := "app=logs,tier in (edge,infra)"; !strings.Contains(out.String(), want) {
		t.Errorf("output:\n%s\nwant the selector %q", out.String(), want)
	}
}
