package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/api"
)

func TestPrintNodes_podsTaintsAndCordon(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "db-1", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{
			{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
			{Key: "maint", Effect: corev1.TaintEffectNoExecute},
		}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("20")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	raw, _ := json.Marshal(map[string]any{"items": []corev1.Node{n}})
	var b bytes.Buffer
	if err := printTable(&b, "nodes", raw, true, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Ready,SchedulingDisabled", " 20 ", "dedicated=db:NoSchedule,maint:NoExecute"} {
		if !strings.Contains(out, want) {
			t.Errorf("get nodes -o wide lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintSecrets_keysAndSizesOnly(t *testing.T) {
	s := api.SummarizeSecret(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("s3cr3t-value"), "user": []byte("app")},
	})
	raw, _ := json.Marshal(map[string]any{"items": []api.SecretSummary{s}})
	var b bytes.Buffer
	if err := printTable(&b, "secrets", raw, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "password(12B),user(3B)") || strings.Contains(out, "s3cr3t") || strings.Contains(string(raw), "s3cr3t") {
		t.Errorf("secrets:\n%s\n(raw %s)", out, raw)
	}
}
