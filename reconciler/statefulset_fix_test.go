package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
)

// images lists the image of each pod, by name.
func (s *stsSim) images() map[string]string {
	out := map[string]string{}
	for _, p := range s.o.Pods {
		out[p.Name] = p.Spec.Containers[0].Image
	}
	return out
}

// A broken update (web:2 never gets ready) reverted in Git is repaired:
// the pod left on the broken revision is replaced, whether it is Running
// but not Ready, crash-looping or Failed, as `git revert` promises.
func TestStatefulSet_revertingABrokenUpdateReplacesItsPods(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(p *corev1.Pod)
	}{
		{"running, not ready", func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}}
		}},
		{"crash-looping", func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, RestartCount: 7,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}
		}},
		{"failed", func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodFailed} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStsSim(t)
			v1 := sts("web", 3, "web:1")
			s.settle(desiredSts(v1))
			// web:2 never comes up.
			s.ready = func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image != "web:2" }
			v2 := desiredSts(withImage(v1, "web:2"))
			for range 6 {
				s.agent()
				s.plan(v2)
				if p := s.pod("web-2"); p != nil && p.Spec.NodeName != "" && p.Spec.Containers[0].Image == "web:2" && p.Status.Phase == "" {
					s.o = setPod(t, s.o, "default/web-2", tt.break_)
				}
			}
			if got := s.images(); got["web-2"] != "web:2" || got["web-1"] != "web:1" {
				t.Fatalf("the broken update: %v", got)
			}
			// While web:2 is the update revision, its broken pod is waited for.
			if tt.name != "failed" {
				if a := s.plan(v2); len(deleted(a)) > 0 {
					t.Fatalf("a pod on the update revision deleted while it is not up: %v", summarize(a))
				}
			}

			s.settle(desiredSts(v1)) // git revert
			for name, img := range s.images() {
				if img != "web:1" {
					t.Errorf("%s runs %s after the revert", name, img)
				}
			}
			if len(s.o.Pods) != 3 {
				t.Fatalf("pods %v", podKeys(s.o))
			}
			if done, msg := StatefulSetStatus(s.stored("web")); !done {
				t.Fatalf("after the revert: %s", msg)
			}
		})
	}
}

// The repair replaces only pods that block on a revision Git no longer
// wants, from the highest, and never below the partition.
func TestStatefulSet_repairWaitsForOtherBlockers(t *testing.T) {
	s := newStsSim(t)
	v1 := sts("web", 3, "web:1")
	s.settle(desiredSts(v1))
	// web-0 (current revision, below any update) stops being ready, and
	// web-2 is on an old revision and not ready: web-0 must come back by
	// itself; deleting web-2 would not help it.
	s.o = setPod(t, s.o, "default/web-0", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })
	s.o = setPod(t, s.o, "default/web-2", func(p *corev1.Pod) {
		p.Labels[appsv1.ControllerRevisionHashLabelKey] = "web-old"
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	})
	if a := s.plan(desiredSts(v1)); len(deleted(a)) > 0 {
		t.Fatalf("deleted %v while web-0 (on the update revision) is not ready", deleted(a))
	}
	// Partition 3: web-2 is below it; the repair leaves it.
	s.o = setPod(t, s.o, "default/web-0", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionTrue })
	if a := s.plan(desiredSts(withPartition(v1, 3))); len(deleted(a)) > 0 {
		t.Fatalf("deleted %v below the partition", deleted(a))
	}
	a := s.plan(desiredSts(v1))
	if !slices.Equal(deleted(a), []string{"web-2"}) || !strings.Contains(strings.Join(summarize(a), " "), "unhealthy") {
		t.Fatalf("repair: %v", summarize(a))
	}
}

// A pod of another owner (here a Pod from Git) holding web-1 is never
// doubled: the ordinal waits, and the status and one event say why.
func TestStatefulSet_skipsAnOrdinalWhoseNameAnotherPodHolds(t *testing.T) {
	for _, policy := range []appsv1.PodManagementPolicyType{appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement} {
		t.Run(string(policy), func(t *testing.T) {
			s := newStsSim(t)
			spec := podSpec("other:1", "")
			spec.NodeName = "n1"
			squatter := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default"}, Spec: spec}
			s.o.Pods = []*corev1.Pod{squatter}
			web := sts("web", 3, "web:1")
			web.Spec.PodManagementPolicy = policy
			desired := desiredSts(web)
			desired.Pods = []corev1.Pod{*squatter}
			var events []Event
			for range 10 {
				s.agent()
				res := Plan(desired, s.o, s.now)
				events = append(events, res.Events...)
				s.o = stsApply(t, s.o, res.Actions) // fails on a second CreatePod web-1
				s.now = s.now.Add(time.Second)
			}
			want := []string{"web-0", "web-1"}
			if policy == appsv1.ParallelPodManagement {
				want = []string{"web-0", "web-1", "web-2"}
			}
			if got := podNames(s.o); !slices.Equal(got, want) {
				t.Fatalf("pods %v, want %v", got, want)
			}
			if s.pod("web-1").Spec.Containers[0].Image != "other:1" {
				t.Fatal("web-1 replaced")
			}
			st := s.stored("web").Status
			if len(st.Conditions) != 1 || st.Conditions[0].Type != ConditionPodNameTaken ||
				!strings.Contains(st.Conditions[0].Message, "web-1 (taken by pod default/web-1 from Git)") {
				t.Fatalf("conditions %+v", st.Conditions)
			}
			if len(events) != 1 || events[0].Reason != "FailedCreate" || events[0].Kind != "StatefulSet" {
				t.Fatalf("events %+v", events)
			}
			// The name freed, the ordinal is created and the condition goes.
			desired.Pods = nil
			s.settle(desiredSts(web))
			if got := podNames(s.o); len(got) != 3 || s.pod("web-1").Spec.Containers[0].Image != "web:1" {
				t.Fatalf("pods %v", got)
			}
			if c := s.stored("web").Status.Conditions; len(c) != 0 {
				t.Fatalf("conditions %+v", c)
			}
		})
	}
}

func podNames(o Observed) []string {
	var out []string
	for _, p := range o.Pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// A StatefulSet's pods on a drained or NoExecute-tainted node: a pod whose
// spec names the node stays (it would only come back), as does one whose
// claim is bound to the node under a drain; others are deleted once and
// created again under their name on another node (one whose claim holds
// it to a tainted node waits, Pending, and is not deleted again).
func TestStatefulSet_evictionAndDrainMoveEachPodOnce(t *testing.T) {
	noExec := corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}
	for _, tt := range []struct {
		name     string
		pinned   bool // template nodeName n1
		claims   bool // a claim template: data-web-0 is bound to n1
		taint    bool // else drain
		deletes  int
		wantNode string
	}{
		{"drain", false, false, false, 1, "n2"},
		{"taint", false, false, true, 1, "n2"},
		{"drain, pinned", true, false, false, 0, "n1"},
		{"taint, pinned", true, false, true, 0, "n1"},
		{"drain, claim on the node", false, true, false, 0, "n1"},
		{"taint, claim on the node", false, true, true, 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStsSim(t)
			web := sts("web", 1, "web:1")
			if tt.pinned {
				web.Spec.Template.Spec.NodeName = "n1"
			}
			if !tt.claims {
				web.Spec.VolumeClaimTemplates = nil
			}
			s.o = taintNode(s.o, "n2", corev1.Taint{Key: "away", Effect: corev1.TaintEffectNoSchedule}) // web-0 goes to n1
			s.settle(desiredSts(web))
			if got := s.pod("web-0").Spec.NodeName; got != "n1" {
				t.Fatalf("web-0 on %q", got)
			}
			if tt.claims {
				if got := kube.ClaimNode(&s.o.Claims[0]); got != "n1" {
					t.Fatalf("data-web-0 bound to %q", got)
				}
			}
			s.o.Nodes = []corev1.Node{node("n1", "8"), node("n2", "8")}
			if tt.taint {
				s.o = taintNode(s.o, "n1", noExec)
			} else {
				s.o.Nodes = cordon(s.o.Nodes, "n1")
				s.o.Drains = map[string]Drain{"n1": {}}
			}
			deletes := 0
			for range 8 {
				s.agent()
				deletes += len(deleted(s.plan(desiredSts(web))))
			}
			if p := s.pod("web-0"); p == nil || deletes != tt.deletes || p.Spec.NodeName != tt.wantNode {
				t.Fatalf("%d deletes, web-0 %v; want %d, on %q", deletes, p != nil && p.Spec.NodeName != "", tt.deletes, tt.wantNode)
			}
			if tt.claims && !tt.taint {
				st := DrainStatus("n1", s.o, Drain{})
				if want := "pod default/web-0 of statefulset/default/web stays: its claim's data is on this node"; !slices.Contains(st.Waiting, want) || st.Done {
					t.Fatalf("drain status %+v", st)
				}
			}
		})
	}
}

// A StatefulSet gets its creation time when first stored, and keeps it.
func TestStatefulSet_creationTimestamp(t *testing.T) {
	s := newStsSim(t)
	s.settle(desiredSts(sts("web", 1, "web:1")))
	got := s.stored("web").CreationTimestamp
	if !got.Equal(&metav1.Time{Time: t0}) {
		t.Fatalf("creationTimestamp %v, want %v", got, t0)
	}
	s.settle(desiredSts(sts("web", 2, "web:1")))
	if c := s.stored("web").CreationTimestamp; !c.Equal(&got) {
		t.Fatalf("creationTimestamp changed to %v", c)
	}
	// One stored without it gets it.
	s.o.StatefulSets[0].CreationTimestamp = metav1.Time{}
	s.settle(desiredSts(sts("web", 2, "web:1")))
	if s.stored("web").CreationTimestamp.IsZero() {
		t.Fatal("no creationTimestamp")
	}
}

// whenScaled: Delete covers the claims of a claim template the
// StatefulSet no longer has (it was removed and added back without it):
// those of ordinals scaled away go with their pods; those of ordinals that
// stay are kept, as Kubernetes keeps them.
func TestStatefulSet_whenScaledDeleteCoversClaimsOfARemovedTemplate(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 2, "web:1")
	web.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	logs := *web.Spec.VolumeClaimTemplates[0].DeepCopy()
	logs.Name = "logs"
	web.Spec.VolumeClaimTemplates = append(web.Spec.VolumeClaimTemplates, logs)
	s.settle(desiredSts(web))
	if !slices.Equal(s.claimNames(), []string{"data-web-0", "data-web-1", "logs-web-0", "logs-web-1"}) {
		t.Fatalf("claims %v", s.claimNames())
	}
	one := sts("web", 1, "web:1")
	one.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	s.settle(desiredSts(one))
	if !slices.Equal(s.claimNames(), []string{"data-web-0", "logs-web-0"}) {
		t.Fatalf("claims %v", s.claimNames())
	}
	for _, c := range []struct {
		claim string
		n     int
		ok    bool
	}{{"logs-web-1", 1, true}, {"a-web-web-3", 3, true}, {"web-3", 0, false}, {"data-web-x", 0, false}, {"data-web-01", 0, false}, {"data-webby-1", 0, false}} {
		if n, ok := claimOrdinal(&one, c.claim); n != c.n || ok != c.ok {
			t.Errorf("claimOrdinal(%s) = %d %v", c.claim, n, ok)
		}
	}
}
