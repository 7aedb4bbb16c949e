package preview

import (
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The dry run reads the same placement rules as the planner: taints, pod
// limits and pod anti-affinity between the replicas it places.
func TestCompute_verdictHonoursPlacementRules(t *testing.T) {
	antiAffine := deployment("web", 3, "registry.local/web:1.0", "100m", "64Mi", "") + `      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app: web
`
	hostNode := func(name string) corev1.Node {
		n := node(name, "4", "8Gi")
		n.Labels = map[string]string{"kubernetes.io/hostname": name}
		return n
	}
	a, b, c := hostNode("a"), hostNode("b"), hostNode("c")
	c.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	r := Compute(nil, set(t, antiAffine), running(t, set(t), a, b, c), now)
	want := `does not fit: web-[0-9a-f]{10}-[0-9a-z]+ cannot be scheduled: 0/3 nodes are available: ` +
		`1 node\(s\) had untolerated taint \{dedicated: db\}, 2 node\(s\) didn't match pod anti-affinity rules`
	if r.Fits || !regexp.MustCompile(`^`+want+`$`).MatchString(r.Verdict) {
		t.Errorf("verdict = %v %q\nwant %q", r.Fits, r.Verdict, want)
	}

	c.Spec.Taints = nil
	if r := Compute(nil, set(t, antiAffine), running(t, set(t), a, b, c), now); !r.Fits || r.Verdict != "fits: 3 pods start on 3 nodes" {
		t.Errorf("verdict = %v %q, want fits on 3 nodes", r.Fits, r.Verdict)
	}
}
