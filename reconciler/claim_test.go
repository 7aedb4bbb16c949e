package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/manifest"
)

func claim(name, size string, annotations ...string) corev1.PersistentVolumeClaim {
	c := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	for i := 0; i+1 < len(annotations); i += 2 {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[annotations[i]] = annotations[i+1]
	}
	return c
}

// withClaimVolume makes d's pods mount the claim.
func withClaimVolume(d appsv1.Deployment, claim string) appsv1.Deployment {
	d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data",
		VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
	return d
}

func volumeNode(name, cpu, capacity string) corev1.Node {
	n := node(name, cpu)
	if capacity != "" {
		n.Status.Allocatable[kube.ResourceLocalStorage] = resource.MustParse(capacity)
	}
	return n
}

// applyClaims is apply plus the claim actions.
func applyClaims(t testing.TB, o Observed, actions []Action) Observed {
	t.Helper()
	claims := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range o.Claims {
		claims[key(c.Namespace, c.Name)] = c
	}
	var rest []Action
	for _, a := range actions {
		switch a.Type {
		case PutClaim:
			claims[key(a.Claim.Namespace, a.Claim.Name)] = roundTrip(t, a.Claim)
		case DeleteClaim:
			if _, ok := claims[key(a.Namespace, a.Name)]; !ok {
				t.Fatalf("DeleteClaim %s/%s: no such claim", a.Namespace, a.Name)
			}
			delete(claims, key(a.Namespace, a.Name))
		default:
			rest = append(rest, a)
		}
	}
	out := apply(t, o, rest)
	out.Volumes = o.Volumes
	for _, k := range sortedKeys(claims) {
		out.Claims = append(out.Claims, claims[k])
	}
	return out
}

func claimSet(ds []appsv1.Deployment, cs ...corev1.PersistentVolumeClaim) *manifest.Set {
	s := set(ds, nil, nil)
	s.PersistentVolumeClaims = cs
	return s
}

func findClaim(o Observed, name string) *corev1.PersistentVolumeClaim {
	for i := range o.Claims {
		if o.Claims[i].Name == name {
			return &o.Claims[i]
		}
	}
	return nil
}

func TestPlan_claimBoundInThePlanThatBindsItsPod(t *testing.T) {
	web := withClaimVolume(deployment("web", 1, "web:1", "100m"), "data")
	desired := claimSet([]appsv1.Deployment{web}, claim("data", "1Gi"))
	o := Observed{Nodes: []corev1.Node{volumeNode("n1", "4", "10Gi"), volumeNode("n2", "4", "10Gi")}}
	res := Plan(desired, o, t0)
	var put *corev1.PersistentVolumeClaim
	var podNode string
	for _, a := range res.Actions {
		switch a.Type {
		case PutClaim:
			if put != nil {
				t.Fatalf("two puts of the claim: %v", summarize(res.Actions))
			}
			put = a.Claim
		case CreatePod:
			if put == nil {
				t.Fatalf("the pod comes before its claim: %v", summarize(res.Actions))
			}
			podNode = a.Pod.Spec.NodeName
		}
	}
	if put == nil || podNode == "" {
		t.Fatalf("actions: %v", summarize(res.Actions))
	}
	if put.Status.Phase != corev1.ClaimBound || kube.ClaimNode(put) != podNode || put.Spec.VolumeName != "pvc-"+string(put.UID) || put.UID == "" {
		t.Errorf("claim: phase %s node %q volume %q uid %q; pod on %s", put.Status.Phase, kube.ClaimNode(put), put.Spec.VolumeName, put.UID, podNode)
	}
	if q := put.Status.Capacity[corev1.ResourceStorage]; q.String() != "1Gi" {
		t.Errorf("capacity %s", q.String())
	}
	o = runPods(applyClaims(t, o, res.Actions))
	o = applyClaims(t, o, Plan(desired, o, t0.Add(time.Second)).Actions) // the Deployment's status
	if again := Plan(desired, o, t0.Add(2*time.Second)); len(again.Actions) != 0 {
		t.Errorf("not converged: %v", summarize(again.Actions))
	}

	// A rollout's new pod, and the replacement of a deleted pod, go to
	// the claim's node whichever is emptier.
	web2 := withClaimVolume(deployment("web", 1, "web:2", "100m"), "data")
	desired2 := claimSet([]appsv1.Deployment{web2}, claim("data", "1Gi"))
	for i := 0; i < 6; i++ {
		res := Plan(desired2, o, t0.Add(time.Duration(i+2)*time.Second))
		for _, a := range res.Actions {
			if a.Type == CreatePod && a.Pod.Spec.NodeName != podNode {
				t.Fatalf("new pod on %s, claim on %s", a.Pod.Spec.NodeName, podNode)
			}
			if a.Type == PutClaim {
				t.Fatalf("claim put again: %s", a.Reason)
			}
		}
		o = runPods(applyClaims(t, o, res.Actions))
	}
}

func TestPlan_claimCapacityAndMissingClaims(t *testing.T) {
	big := withClaimVolume(deployment("big", 1, "big:1", "100m"), "big")
	orphan := withClaimVolume(deployment("orphan", 1, "o:1", "100m"), "nowhere")
	desired := claimSet([]appsv1.Deployment{big, orphan}, claim("big", "20Gi"))
	o := Observed{Nodes: []corev1.Node{volumeNode("n1", "4", "10Gi"), volumeNode("n2", "4", "5Gi")}}
	res := Plan(desired, o, t0)
	got := strings.Join(summarize(res.Actions), "\n")
	for _, want := range []string{
		"0/2 nodes are available: 2 node(s) did not have enough free storage",
		`persistentvolumeclaim "nowhere" not found`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	for _, a := range res.Actions {
		if a.Type == PutClaim && a.Claim.Status.Phase != corev1.ClaimPending {
			t.Errorf("claim %s: %s, want Pending", a.Claim.Name, a.Claim.Status.Phase)
		}
	}
	o = applyClaims(t, o, res.Actions)
	if again := Plan(desired, o, t0.Add(time.Second)); len(again.Actions) != 0 {
		t.Errorf("not converged: %v", summarize(again.Actions))
	}
}

func TestPlan_claimPrunedOwnedLeftAlone(t *testing.T) {
	web := withClaimVolume(deployment("web", 1, "web:1", "100m"), "data")
	keep := claim("keep", "1Gi", kube.AnnotationReclaimPolicy, "Delete")
	desired := claimSet([]appsv1.Deployment{web}, claim("data", "1Gi"), keep)
	o := settledClaims(t, desired, volumeNode("n1", "4", ""))
	owned := claim("data-db-0", "1Gi", AnnotationOwner, "StatefulSet/default/db")
	o.Claims = append(o.Claims, owned)

	// Git drops both claims (and the Deployment): the claims are deleted,
	// the StatefulSet's is not; what becomes of the data is said.
	res := Plan(claimSet(nil), o, t0.Add(time.Minute))
	var deleted []string
	for _, a := range res.Actions {
		if a.Type == DeleteClaim {
			deleted = append(deleted, a.Name+": "+a.Reason)
		}
	}
	want := []string{
		"data: pruned: removed from Git (its data stays on node n1)",
		"keep: pruned: removed from Git (it held no data)",
	}
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted:\n%s\nwant:\n%s", strings.Join(deleted, "\n"), strings.Join(want, "\n"))
	}
	// Deletes come after the pods are gone.
	last := res.Actions[len(res.Actions)-1]
	if last.Type != DeleteClaim {
		t.Errorf("last action %s, want the claim deletes last", last.Type)
	}
}

func settledClaims(t *testing.T, desired *manifest.Set, nodes ...corev1.Node) Observed {
	t.Helper()
	o := Observed{Nodes: nodes}
	for i := 0; i < 3; i++ {
		o = runPods(applyClaims(t, o, Plan(desired, o, t0.Add(time.Duration(i)*time.Second)).Actions))
	}
	return o
}

func TestPlan_claimComesBackToItsRetainedVolume(t *testing.T) {
	web := withClaimVolume(deployment("web", 1, "web:1", "100m"), "data")
	desired := claimSet([]appsv1.Deployment{web}, claim("data", "1Gi"))
	o := Observed{Nodes: []corev1.Node{volumeNode("n1", "4", "10Gi"), volumeNode("n2", "4", "10Gi")},
		// n1's volume of the name said Delete: never bound again; n2's is
		// not marked Released by its agent yet, but no claim holds it.
		Volumes: []Volume{
			{Node: "n1", Namespace: "default", Claim: "data", VolumeName: "pvc-doomed", Size: 1 << 30, ReclaimDelete: true},
			{Node: "n2", Namespace: "default", Claim: "data", VolumeName: "pvc-old", Size: 1 << 30},
		}}
	res := Plan(desired, o, t0)
	var c *corev1.PersistentVolumeClaim
	for _, a := range res.Actions {
		if a.Type == PutClaim {
			c = a.Claim
		}
		if a.Type == CreatePod && a.Pod.Spec.NodeName != "n2" {
			t.Errorf("pod on %s, want n2 (the retained volume's)", a.Pod.Spec.NodeName)
		}
	}
	if c == nil || c.Spec.VolumeName != "pvc-old" || kube.ClaimNode(c) != "n2" || c.Status.Phase != corev1.ClaimBound {
		t.Fatalf("claim: %+v", c)
	}
}

func TestPlan_claimOfAGoneNodeIsLostAndItsPodWaits(t *testing.T) {
	web := withClaimVolume(deployment("web", 1, "web:1", "100m"), "data")
	desired := claimSet([]appsv1.Deployment{web}, claim("data", "1Gi"))
	o := settledClaims(t, desired, volumeNode("n1", "4", ""), volumeNode("n2", "4", ""))
	at := kube.ClaimNode(findClaim(o, "data"))
	var rest []corev1.Node
	for _, n := range o.Nodes {
		if n.Name != at {
			rest = append(rest, n)
		}
	}
	o.Nodes = rest
	res := Plan(desired, o, t0.Add(time.Minute))
	got := strings.Join(summarize(res.Actions), "\n")
	for _, want := range []string{"node " + at + " holding its volume is gone: lost",
		"1 node(s) had volume node affinity conflict; persistentvolumeclaim default/data is bound to node " + at + " (not available; its data is there)"} {
		if !strings.Contains(got, want) && !strings.Contains(reasons(res.Actions), want) {
			t.Errorf("no %q in:\n%s\n%s", want, got, reasons(res.Actions))
		}
	}
}

func reasons(actions []Action) string {
	var out []string
	for _, a := range actions {
		out = append(out, string(a.Type)+": "+a.Reason)
	}
	return strings.Join(out, "\n")
}
