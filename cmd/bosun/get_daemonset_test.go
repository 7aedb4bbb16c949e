package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
