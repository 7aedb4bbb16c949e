package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseTaints(t *testing.T) {
	got, err := parseTaints("dedicated=db:NoSchedule, maint:NoExecute,spot=:PreferNoSchedule")
	want := []corev1.Taint{
		{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
		{Key: "maint", Effect: corev1.TaintEffectNoExecute},
		{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseTaints = %+v, %v", got, err)
	}
	for in, msg := range map[string]string{
		"dedicated=db":       `"dedicated=db" is not key=value:Effect or key:Effect`,
		":NoSchedule":        `":NoSchedule" is not key=value:Effect`,
		"dedicated=db:Never": `"dedicated=db:Never": effect "Never": must be NoSchedule, PreferNoSchedule or NoExecute`,
	} {
		if _, err := parseTaints(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseTaints(%q) err = %v, want %q", in, err, msg)
		}
	}
}

func TestParseResources(t *testing.T) {
	got, err := parseResources("cpu=500m,memory=512Mi")
	if err != nil || got.Cpu().String() != "500m" || got.Memory().String() != "512Mi" {
		t.Errorf("parseResources = %v, %v", got, err)
	}
	for in, msg := range map[string]string{
		"cpu":      `"cpu" is not name=quantity`,
		"cpu=lots": `"cpu=lots": quantities must match`,
	} {
		if _, err := parseResources(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseResources(%q) err = %v, want %q", in, err, msg)
		}
	}
}

func TestAgentFlags_badPlacementFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"agent", "--etcd-endpoints", "http://127.0.0.1:1", "--taints", "a=b:Sometimes"},
		{"agent", "--etcd-endpoints", "http://127.0.0.1:1", "--system-reserved", "cpu"},
		{"server", "--repo", "/nowhere", "--taints", "oops"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("bosun %q: err %v, want exit 2", args, err)
		}
	}
}
