package nodes

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConfig_placement(t *testing.T) {
	q := resource.MustParse
	c := Config{
		NodeName: "n1", StateDir: t.TempDir(), MaxPods: 3,
		Capacity:       corev1.ResourceList{corev1.ResourceCPU: q("4"), corev1.ResourceMemory: q("8Gi")},
		SystemReserved: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("512Mi")},
		Taints: []corev1.Taint{
			{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
			{Key: "maint", Effect: corev1.TaintEffectNoExecute},
		},
	}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	added := metav1.NewTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	a := &Agent{cfg: c, taints: withTimeAdded(c.Taints, added)}
	n := a.nodeObject("1.6.20")
	if got := n.Status.Capacity; got.Cpu().String() != "4" || got.Memory().String() != "8Gi" || got.Pods().Value() != 3 {
		t.Errorf("capacity = %v", got)
	}
	if got := n.Status.Allocatable; got.Cpu().String() != "3500m" || got.Memory().String() != "7680Mi" || got.Pods().Value() != 3 {
		t.Errorf("allocatable = %v", got)
	}
	want := []corev1.Taint{
		{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
		{Key: "maint", Effect: corev1.TaintEffectNoExecute, TimeAdded: &added},
	}
	if len(n.Spec.Taints) != 2 || n.Spec.Taints[0] != want[0] || n.Spec.Taints[1].Key != "maint" ||
		n.Spec.Taints[1].TimeAdded == nil || !n.Spec.Taints[1].TimeAdded.Equal(&added) {
		t.Errorf("taints = %+v, want %+v", n.Spec.Taints, want)
	}
	if c.Taints[1].TimeAdded != nil {
		t.Error("the config's taints were modified")
	}

	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"negative max pods": {Config{MaxPods: -1}, "max pods -1"},
		"bad taint key":     {Config{Taints: []corev1.Taint{{Key: "a b", Effect: corev1.TaintEffectNoSchedule}}}, `taint key "a b"`},
		"bad taint value":   {Config{Taints: []corev1.Taint{{Key: "a", Value: "x y", Effect: corev1.TaintEffectNoSchedule}}}, `taint a value "x y"`},
		"bad effect":        {Config{Taints: []corev1.Taint{{Key: "a", Effect: "Evict"}}}, `effect "Evict": must be NoSchedule, PreferNoSchedule or NoExecute`},
		"taint twice":       {Config{Taints: []corev1.Taint{{Key: "a", Effect: "NoSchedule"}, {Key: "a", Value: "b", Effect: "NoSchedule"}}}, "taint a:NoSchedule: listed twice"},
		"reserve pods":      {Config{SystemReserved: corev1.ResourceList{corev1.ResourcePods: q("1")}}, "system reserved pods: only cpu and memory"},
		"reserve too much":  {Config{Capacity: corev1.ResourceList{corev1.ResourceCPU: q("2")}, SystemReserved: corev1.ResourceList{corev1.ResourceCPU: q("3")}}, "system reserved cpu 3: more than the node's capacity 2"},
	} {
		tc.cfg.NodeName, tc.cfg.StateDir = "n1", t.TempDir()
		if err := tc.cfg.setDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}

	d := Config{NodeName: "n1", StateDir: t.TempDir()}
	if err := d.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if d.Capacity.Pods().Value() != 110 || !d.allocatable.Cpu().Equal(*d.Capacity.Cpu()) {
		t.Errorf("defaults: capacity %v, allocatable %v", d.Capacity, d.allocatable)
	}
}
