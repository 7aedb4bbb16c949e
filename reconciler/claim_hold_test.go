package reconciler

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bosun/kube"
)

// boundClaim is claim bound to volume on node.
func boundClaim(c corev1.PersistentVolumeClaim, node, volume string) corev1.PersistentVolumeClaim {
	bindClaim(&c, node, volume)
	return c
}

// TestPlan_claimDeleteWaitsForTheNodeToRecordItsPolicy: a claim is
// deleted only once its node records its volume with the claim's reclaim
// policy, since the node decides from its record once the claim is gone.
func TestPlan_claimDeleteWaitsForTheNodeToRecordItsPolicy(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name          string
		claimPolicy   string // "" (Retain) or Delete
		recordDelete  bool
		noRecord      bool
		nodeGone      bool
		wantDeleted   bool
		wantInMessage string
	}{
		{name: "Delete then Retain, record not refreshed: held", claimPolicy: "Retain", recordDelete: true,
			wantInMessage: "records its volume pvc-1 with reclaim policy Delete, the claim says Retain"},
		{name: "Retain then Delete, record not refreshed: held", claimPolicy: "Delete", recordDelete: false,
			wantInMessage: "records its volume pvc-1 with reclaim policy Retain, the claim says Delete"},
		{name: "Retain, recorded Retain: deleted", claimPolicy: "", wantDeleted: true},
		{name: "Delete, recorded Delete: deleted", claimPolicy: "Delete", recordDelete: true, wantDeleted: true},
		{name: "no record yet (no data): deleted", claimPolicy: "Delete", noRecord: true, wantDeleted: true},
		{name: "node down, record disagrees: held", claimPolicy: "Retain", recordDelete: true, nodeGone: true,
			wantInMessage: "node n1 is not registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ann []string
			if tc.claimPolicy != "" {
				ann = []string{kube.AnnotationReclaimPolicy, tc.claimPolicy}
			}
			o := Observed{Nodes: []corev1.Node{volumeNode("n1", "4", "")},
				Claims: []corev1.PersistentVolumeClaim{boundClaim(claim("data", "1Gi", ann...), "n1", "pvc-1")}}
			if tc.nodeGone {
				o.Nodes = nil
			}
			if !tc.noRecord {
				o.Volumes = []Volume{{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "pvc-1", Size: 1 << 30, ReclaimDelete: tc.recordDelete}}
			}
			res := Plan(claimSet(nil), o, now)
			if got := hasType(res.Actions, DeleteClaim); got != tc.wantDeleted {
				t.Fatalf("deleted %v, want %v: %v", got, tc.wantDeleted, summarize(res.Actions))
			}
			if tc.wantDeleted {
				return
			}
			if len(res.Events) != 1 || res.Events[0].Reason != ReasonClaimDeleteHeld || !strings.Contains(res.Events[0].Message, tc.wantInMessage) {
				t.Errorf("events %+v, want one %s saying %q", res.Events, ReasonClaimDeleteHeld, tc.wantInMessage)
			}
			if !res.Wake.Equal(now.Add(claimDeleteRecheck)) {
				t.Errorf("wake %v, want %v", res.Wake, now.Add(claimDeleteRecheck))
			}
		})
	}
}

// A StatefulSet's claims go through the same gate.
func TestPlan_statefulSetClaimDeleteWaitsForTheNodeToRecordItsPolicy(t *testing.T) {
	web := sts("web", 1, "web:1")
	web.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	c := boundClaim(claim("data-web-0", "1Gi", AnnotationOwner, "StatefulSet/default/web", kube.AnnotationReclaimPolicy, "Delete"), "n1", "pvc-1")
	o := Observed{Nodes: []corev1.Node{volumeNode("n1", "4", "")}, StatefulSets: []appsv1.StatefulSet{web},
		Claims:  []corev1.PersistentVolumeClaim{c},
		Volumes: []Volume{{Node: "n1", Namespace: "default", Claim: "data-web-0", VolumeName: "pvc-1", Size: 1 << 30}}}
	res := Plan(claimSet(nil), o, t0)
	if hasType(res.Actions, DeleteClaim) || !hasType(res.Actions, DeleteStatefulSet) {
		t.Fatalf("record says Retain, claim Delete: want the claim held, the StatefulSet pruned: %v", summarize(res.Actions))
	}
	o.Volumes[0].ReclaimDelete = true
	res = Plan(claimSet(nil), o, t0)
	if count(res.Actions, DeleteClaim) != 1 {
		t.Fatalf("record says Delete: want the claim deleted: %v", summarize(res.Actions))
	}
}

// A ReadWriteOncePod claim's pod replaced in one plan (Recreate): the new
// pod is not bound while the old one, deleted in this plan, still has it
// (maxSurge 0: the old pod is deleted and the new one made in one plan).
func TestPlan_readWriteOncePodClaimWaitsForThePodBeingDeleted(t *testing.T) {
	web := withClaimVolume(deployment("web", 1, "web:1", "100m"), "data")
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	web.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &one}}
	data := claim("data", "1Gi")
	data.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
	o := settledClaims(t, claimSet([]appsv1.Deployment{web}, data), volumeNode("n1", "4", ""))
	web2 := withClaimVolume(deployment("web", 1, "web:2", "100m"), "data")
	web2.Spec.Strategy = web.Spec.Strategy
	res := Plan(claimSet([]appsv1.Deployment{web2}, data), o, t0.Add(time.Minute))
	if !hasType(res.Actions, DeletePod) {
		t.Fatalf("want the old pod deleted: %v", summarize(res.Actions))
	}
	for _, a := range res.Actions {
		if a.Type == CreatePod && a.Pod.Spec.NodeName != "" {
			t.Errorf("new pod bound to %s in the plan that deletes the pod using its ReadWriteOncePod claim", a.Pod.Spec.NodeName)
		}
	}
}
