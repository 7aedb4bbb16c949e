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
)

func TestParseVolumeCapacity(t *testing.T) {
	for in, want := range map[string]int64{"10Gi": 10 << 30, "0": -1, "1000": 1000} {
		if got, err := parseVolumeCapacity(in); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1Gi", "lots"} {
		if _, err := parseVolumeCapacity(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestPrintClaims(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bound := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
			Annotations: map[string]string{"volume.kubernetes.io/selected-node": "n1"}},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-1"},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
	pending := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "big", CreationTimestamp: metav1.NewTime(now)},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}}
	raw, _ := json.Marshal(map[string]any{"items": []corev1.PersistentVolumeClaim{bound, pending}})
	var out bytes.Buffer
	if err := printTable(&out, "persistentvolumeclaims", raw, false, now); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(strings.Split(out.String(), "\n")[1])
	want := []string{"default", "data", "Bound", "pvc-1", "1Gi", "RWO", "n1", "60m"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q\nwhole:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "ACCESS MODES") || !strings.Contains(strings.Split(out.String(), "\n")[2], "Pending") {
		t.Errorf("table:\n%s", out.String())
	}
}
