package reconciler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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

// sts is a StatefulSet as manifest's defaults leave it: OrderedReady,
// RollingUpdate with partition 0, claims retained, one claim template.
func sts(name string, replicas int32, image string) appsv1.StatefulSet {
	zero := int32(0)
	spec := podSpec(image, "")
	spec.RestartPolicy = corev1.RestartPolicyAlways
	return appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       spec,
			},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero}},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

func withPartition(s appsv1.StatefulSet, n int32) appsv1.StatefulSet {
	s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &n}
	return s
}

func withImage(s appsv1.StatefulSet, image string) appsv1.StatefulSet {
	s.Spec.Template = *s.Spec.Template.DeepCopy()
	s.Spec.Template.Spec.Containers[0].Image = image
	return s
}

func desiredSts(ss ...appsv1.StatefulSet) *manifest.Set { return &manifest.Set{StatefulSets: ss} }

// stsSim plays the store and the node agents for StatefulSets: actions
// are applied as the driver would; a deleted bound pod stays Terminating
// on its node until the next agent step tears it down; bound pods become
// Running and Ready when ready says so.
type stsSim struct {
	t     *testing.T
	o     Observed
	now   time.Time
	ready func(pod *corev1.Pod) bool
	// created records, per pod name, whether each lower ordinal was
	// Running and Ready when the plan created it (OrderedReady's promise).
	log []string
}

func newStsSim(t *testing.T) *stsSim {
	return &stsSim{t: t, now: t0, o: Observed{Nodes: []corev1.Node{node("n1", "8"), node("n2", "8")}},
		ready: func(*corev1.Pod) bool { return true }}
}

func (s *stsSim) plan(desired *manifest.Set) []Action {
	s.t.Helper()
	actions := Plan(desired, s.o, s.now).Actions
	s.o = stsApply(s.t, s.o, actions)
	s.now = s.now.Add(time.Second)
	return actions
}

// agent tears down terminating pods and runs bound ones.
func (s *stsSim) agent() {
	s.o.Terminating = nil
	for i, p := range s.o.Pods {
		if p.Spec.NodeName == "" || kube.PodFinished(p) || kube.PodReady(p) || !s.ready(p) {
			continue
		}
		p = replacePod(s.o.Pods, i)
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.now)}}}
	}
}

// settle plans and runs until a plan has nothing to do.
func (s *stsSim) settle(desired *manifest.Set) {
	s.t.Helper()
	for range 100 {
		s.agent()
		if len(s.plan(desired)) == 0 && len(s.o.Terminating) == 0 {
			return
		}
	}
	s.t.Fatalf("did not settle; pods %v", podKeys(s.o))
}

func (s *stsSim) pod(name string) *corev1.Pod {
	for _, p := range s.o.Pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (s *stsSim) stored(name string) *appsv1.StatefulSet {
	for i := range s.o.StatefulSets {
		if s.o.StatefulSets[i].Name == name {
			return &s.o.StatefulSets[i]
		}
	}
	return nil
}

func (s *stsSim) claimNames() []string {
	var out []string
	for _, c := range s.o.Claims {
		out = append(out, c.Name)
	}
	return out
}

func stsApply(t *testing.T, o Observed, actions []Action) Observed {
	t.Helper()
	out := o
	out.Pods = slices.Clone(o.Pods)
	out.StatefulSets = slices.Clone(o.StatefulSets)
	out.Claims = slices.Clone(o.Claims)
	out.Terminating = slices.Clone(o.Terminating)
	find := func(ns, name string) int {
		return slices.IndexFunc(out.Pods, func(p *corev1.Pod) bool { return p.Namespace == ns && p.Name == name })
	}
	claimsSeen := map[string]bool{}
	for _, c := range o.Claims {
		claimsSeen[c.Name] = true
	}
	for _, a := range actions {
		switch a.Type {
		case CreatePod, UpdatePod:
			i := find(a.Pod.Namespace, a.Pod.Name)
			if (i >= 0) != (a.Type == UpdatePod) {
				t.Fatalf("%s %s: exists = %v", a.Type, a.Pod.Name, i >= 0)
			}
			for _, v := range a.Pod.Spec.Volumes {
				if v.PersistentVolumeClaim != nil && !claimsSeen[v.PersistentVolumeClaim.ClaimName] {
					t.Fatalf("%s %s before its claim %s", a.Type, a.Pod.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
			pod := roundTrip(t, a.Pod)
			if i >= 0 {
				out.Pods[i] = &pod
			} else {
				out.Pods = append(out.Pods, &pod)
			}
		case DeletePod:
			i := find(a.Namespace, a.Name)
			if i < 0 {
				t.Fatalf("DeletePod %s: no such pod", a.Name)
			}
			if p := out.Pods[i]; p.Spec.NodeName != "" {
				out.Terminating = append(out.Terminating, TerminatingPod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Owner: kube.OwnerOf(p)})
			}
			out.Pods = slices.Delete(out.Pods, i, i+1)
		case PutStatefulSet:
			i := slices.IndexFunc(out.StatefulSets, func(s appsv1.StatefulSet) bool { return s.Name == a.StatefulSet.Name })
			v := roundTrip(t, a.StatefulSet)
			if i >= 0 {
				out.StatefulSets[i] = v
			} else {
				out.StatefulSets = append(out.StatefulSets, v)
			}
		case DeleteStatefulSet:
			out.StatefulSets = slices.DeleteFunc(out.StatefulSets, func(s appsv1.StatefulSet) bool { return s.Name == a.Name })
		case PutClaim:
			claimsSeen[a.Claim.Name] = true
			i := slices.IndexFunc(out.Claims, func(c corev1.PersistentVolumeClaim) bool { return c.Name == a.Claim.Name })
			v := roundTrip(t, a.Claim)
			if i >= 0 {
				out.Claims[i] = v
			} else {
				out.Claims = append(out.Claims, v)
			}
		case DeleteClaim:
			for _, p := range out.Pods {
				for _, v := range p.Spec.Volumes {
					if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == a.Name {
						t.Fatalf("DeleteClaim %s while pod %s mounts it", a.Name, p.Name)
					}
				}
			}
			out.Claims = slices.DeleteFunc(out.Claims, func(c corev1.PersistentVolumeClaim) bool { return c.Name == a.Name })
		default:
			t.Fatalf("unexpected action %s", a.Type)
		}
	}
	slices.SortFunc(out.Pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Claims, func(a, b corev1.PersistentVolumeClaim) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func created(actions []Action) []string {
	var out []string
	for _, a := range actions {
		if a.Type == CreatePod {
			out = append(out, a.Pod.Name)
		}
	}
	return out
}

func deleted(actions []Action) []string {
	var out []string
	for _, a := range actions {
		if a.Type == DeletePod {
			out = append(out, a.Name)
		}
	}
	return out
}

func TestStatefulSet_orderedReadyCreatesEachOrdinalAfterTheOnesBelowAreReady(t *testing.T) {
	s := newStsSim(t)
	web := desiredSts(sts("web", 3, "web:1"))
	a := s.plan(web)
	if got := created(a); !slices.Equal(got, []string{"web-0"}) {
		t.Fatalf("first plan creates %v, want [web-0]", got)
	}
	if a[0].Type != PutClaim || a[0].Claim.Name != "data-web-0" {
		t.Fatalf("first action %s, want PutClaim data-web-0 before the pod", summarize(a[:1]))
	}
	c := a[0].Claim
	if c.Annotations[AnnotationOwner] != "StatefulSet/default/web" || c.Annotations[annotationReclaimPolicy] != "Retain" ||
		*c.Spec.StorageClassName != manifest.StorageClassLocalPath || c.Labels["app"] != "web" {
		t.Fatalf("claim %+v", c.ObjectMeta)
	}
	// Not ready yet: nothing more.
	if a := s.plan(web); len(created(a)) > 0 {
		t.Fatalf("created %v while web-0 is not ready", created(a))
	}
	s.agent()
	if got := created(s.plan(web)); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("after web-0 is ready: created %v, want [web-1]", got)
	}
	s.agent()
	if got := created(s.plan(web)); !slices.Equal(got, []string{"web-2"}) {
		t.Fatalf("created %v, want [web-2]", got)
	}
	s.settle(web)

	pod := s.pod("web-1")
	if pod.Spec.Hostname != "web-1" || pod.Spec.Subdomain != "web" ||
		pod.Labels[appsv1.StatefulSetPodNameLabel] != "web-1" || pod.Labels[appsv1.PodIndexLabel] != "1" ||
		!strings.HasPrefix(pod.Labels[appsv1.ControllerRevisionHashLabelKey], "web-") ||
		pod.Annotations[AnnotationOwner] != "StatefulSet/default/web" || kube.OwnerOf(pod) != "StatefulSet/default/web" {
		t.Fatalf("pod web-1: %+v %+v", pod.ObjectMeta, pod.Spec)
	}
	if v := pod.Spec.Volumes[len(pod.Spec.Volumes)-1]; v.Name != "data" || v.PersistentVolumeClaim.ClaimName != "data-web-1" {
		t.Fatalf("pod web-1 volume %+v", v)
	}
	st := s.stored("web").Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.UpdatedReplicas != 3 || st.CurrentReplicas != 3 ||
		st.CurrentRevision != st.UpdateRevision || st.CurrentRevision != pod.Labels[appsv1.ControllerRevisionHashLabelKey] || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}
	if done, msg := StatefulSetStatus(s.stored("web")); !done {
		t.Fatalf("StatefulSetStatus: %s", msg)
	}
	if done, failed, msg := RevisionOutcome(web, s.o); !done || failed {
		t.Fatalf("RevisionOutcome %v %v %s", done, failed, msg)
	}
	if !slices.Equal(s.claimNames(), []string{"data-web-0", "data-web-1", "data-web-2"}) {
		t.Fatalf("claims %v", s.claimNames())
	}
}

func TestStatefulSet_parallelCreatesAndRemovesAtOnce(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 3, "web:1")
	web.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	if got := created(s.plan(desiredSts(web))); !slices.Equal(got, []string{"web-0", "web-1", "web-2"}) {
		t.Fatalf("created %v", got)
	}
	s.settle(desiredSts(web))
	one := web
	one.Spec.Replicas = ptr(int32(1))
	if got := deleted(s.plan(desiredSts(one))); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("scale down deleted %v", got)
	}
}

func TestStatefulSet_scaleDownRemovesTheHighestFirstOneAtATime(t *testing.T) {
	s := newStsSim(t)
	s.settle(desiredSts(sts("web", 3, "web:1")))
	one := desiredSts(sts("web", 1, "web:1"))
	if got := deleted(s.plan(one)); !slices.Equal(got, []string{"web-2"}) {
		t.Fatalf("deleted %v, want [web-2]", got)
	}
	// web-2 is still stopping: web-1 waits.
	if got := deleted(s.plan(one)); len(got) > 0 {
		t.Fatalf("deleted %v while web-2 stops", got)
	}
	s.agent()
	if got := deleted(s.plan(one)); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("deleted %v, want [web-1]", got)
	}
	s.settle(one)
	// Claims are retained by default, and used again on scale up.
	if !slices.Equal(s.claimNames(), []string{"data-web-0", "data-web-1", "data-web-2"}) {
		t.Fatalf("claims %v", s.claimNames())
	}
	a := s.plan(desiredSts(sts("web", 2, "web:1")))
	if got := created(a); !slices.Equal(got, []string{"web-1"}) || hasType(a, PutClaim) {
		t.Fatalf("scale up: %v", summarize(a))
	}
}

func TestStatefulSet_scaleDownWaitsForEveryPodThatStaysToBeReady(t *testing.T) {
	s := newStsSim(t)
	s.settle(desiredSts(sts("web", 3, "web:1")))
	s.o = setPod(t, s.o, "default/web-0", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })
	if got := deleted(s.plan(desiredSts(sts("web", 2, "web:1")))); len(got) > 0 {
		t.Fatalf("deleted %v while web-0 is not ready", got)
	}
}

func TestStatefulSet_whenScaledDeleteDeletesTheClaimsOfRemovedOrdinalsOnceTheirPodsAreGone(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 2, "web:1")
	web.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	s.settle(desiredSts(web))
	if c := s.o.Claims[0]; c.Annotations[annotationReclaimPolicy] != "Delete" {
		t.Fatalf("claim reclaim policy %q", c.Annotations[annotationReclaimPolicy])
	}
	one := web
	one.Spec.Replicas = ptr(int32(1))
	a := s.plan(desiredSts(one))
	if hasType(a, DeleteClaim) {
		t.Fatalf("claim deleted while its pod stops: %v", summarize(a))
	}
	s.agent()
	a = s.plan(desiredSts(one))
	if count(a, DeleteClaim) != 1 || !slices.Equal(s.claimNames(), []string{"data-web-0"}) {
		t.Fatalf("after web-1 is gone: %v; claims %v", summarize(a), s.claimNames())
	}
}

func TestStatefulSet_partitionedUpdateTouchesOnlyOrdinalsFromThePartitionUp(t *testing.T) {
	s := newStsSim(t)
	v1 := sts("web", 3, "web:1")
	s.settle(desiredSts(v1))
	rev1 := s.stored("web").Status.CurrentRevision
	v2 := withPartition(withImage(v1, "web:2"), 1)
	rev2 := StatefulSetRevision(&v2, &v2.Spec.Template)

	if got := deleted(s.plan(desiredSts(v2))); !slices.Equal(got, []string{"web-2"}) {
		t.Fatalf("deleted %v, want [web-2]", got)
	}
	if got := created(s.plan(desiredSts(v2))); len(got) > 0 {
		t.Fatalf("created %v while web-2 stops", got)
	}
	s.settle(desiredSts(v2))
	for name, rev := range map[string]string{"web-0": rev1, "web-1": rev2, "web-2": rev2} {
		if got := podRevision(s.pod(name)); got != rev {
			t.Errorf("%s revision %s, want %s", name, got, rev)
		}
	}
	st := s.stored("web")
	if st.Status.CurrentRevision != rev1 || st.Status.UpdateRevision != rev2 || st.Status.CurrentReplicas != 1 || st.Status.UpdatedReplicas != 2 {
		t.Fatalf("status %+v", st.Status)
	}
	if st.Annotations[AnnotationCurrentTemplate] == "" {
		t.Fatal("the current template is not kept")
	}
	if done, msg := StatefulSetStatus(st); !done {
		t.Fatalf("a partitioned update that reached its partition: %s", msg)
	}

	// Below the partition, a deleted pod comes back with the current
	// revision, as Kubernetes does.
	s.o = setPod(t, s.o, "default/web-0", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
	s.settle(desiredSts(v2))
	if got := podRevision(s.pod("web-0")); got != rev1 {
		t.Fatalf("web-0 recreated with %s, want the current %s", got, rev1)
	}
	if img := s.pod("web-0").Spec.Containers[0].Image; img != "web:1" {
		t.Fatalf("web-0 image %s", img)
	}

	// Partition 0 finishes it; the update revision becomes current.
	s.settle(desiredSts(withPartition(v2, 0)))
	st = s.stored("web")
	if podRevision(s.pod("web-0")) != rev2 || st.Status.CurrentRevision != rev2 || st.Status.CurrentReplicas != 3 || st.Annotations[AnnotationCurrentTemplate] != "" {
		t.Fatalf("after partition 0: web-0 %s, status %+v, annotations %v", podRevision(s.pod("web-0")), st.Status, st.Annotations)
	}
}

func TestStatefulSet_onDeleteReplacesOnlyDeletedPods(t *testing.T) {
	s := newStsSim(t)
	v1 := sts("web", 2, "web:1")
	v1.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	s.settle(desiredSts(v1))
	v2 := withImage(v1, "web:2")
	s.settle(desiredSts(v2))
	if img := s.pod("web-1").Spec.Containers[0].Image; img != "web:1" {
		t.Fatalf("OnDelete replaced web-1 (%s)", img)
	}
	s.o = setPod(t, s.o, "default/web-1", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
	s.settle(desiredSts(v2))
	if img := s.pod("web-1").Spec.Containers[0].Image; img != "web:2" {
		t.Fatalf("web-1 recreated with %s", img)
	}
}

func TestStatefulSet_lostPodIsCreatedAgainUnderItsName(t *testing.T) {
	s := newStsSim(t)
	web := desiredSts(sts("web", 2, "web:1"))
	s.settle(web)
	lost := s.pod("web-1").Spec.NodeName
	s.o.Nodes = slices.DeleteFunc(slices.Clone(s.o.Nodes), func(n corev1.Node) bool { return n.Name == lost })
	a := s.plan(web)
	if !slices.Equal(deleted(a), []string{"web-1"}) {
		t.Fatalf("%v", summarize(a))
	}
	// A lost node never reports its teardown: no wait.
	if got := created(s.plan(web)); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("created %v", got)
	}
}

func TestStatefulSet_removedFromGitDeletesPodsThenItsRecordAndClaimsPerPolicy(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 2, "web:1")
	web.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	db := sts("db", 1, "db:1")
	s.settle(desiredSts(db, web))
	a := s.plan(desiredSts(db))
	if !slices.Equal(deleted(a), []string{"web-0", "web-1"}) || hasType(a, DeleteStatefulSet) || hasType(a, DeleteClaim) {
		t.Fatalf("%v", summarize(a))
	}
	s.agent()
	a = s.plan(desiredSts(db))
	if count(a, DeleteStatefulSet) != 1 || count(a, DeleteClaim) != 2 {
		t.Fatalf("%v", summarize(a))
	}
	if !slices.Equal(s.claimNames(), []string{"data-db-0"}) {
		t.Fatalf("claims %v", s.claimNames())
	}
	s.settle(desiredSts())
	if !slices.Equal(s.claimNames(), []string{"data-db-0"}) || len(s.o.StatefulSets) != 0 {
		t.Fatalf("whenDeleted Retain: claims %v", s.claimNames())
	}
}

func TestStatefulSet_minReadySecondsHoldsTheNextOrdinal(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 2, "web:1")
	web.Spec.MinReadySeconds = 30
	s.plan(desiredSts(web))
	readyAt := s.now
	s.agent()
	res := Plan(desiredSts(web), s.o, s.now)
	if got := created(res.Actions); len(got) > 0 {
		t.Fatalf("created %v before web-0 is available", got)
	}
	if want := readyAt.Add(30 * time.Second); !res.Wake.Equal(want) {
		t.Fatalf("wake %v, want %v", res.Wake, want)
	}
	s.now = s.now.Add(31 * time.Second)
	if got := created(s.plan(desiredSts(web))); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("created %v", got)
	}
}

func TestStatefulSet_ordinalsStartAndPartitionCountFromIt(t *testing.T) {
	s := newStsSim(t)
	web := sts("web", 2, "web:1")
	web.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	s.settle(desiredSts(web))
	if s.pod("web-5") == nil || s.pod("web-6") == nil || len(s.o.Pods) != 2 {
		t.Fatalf("pods %v", podKeys(s.o))
	}
	s.settle(desiredSts(withPartition(withImage(web, "web:2"), 1)))
	if s.pod("web-5").Spec.Containers[0].Image != "web:1" || s.pod("web-6").Spec.Containers[0].Image != "web:2" {
		t.Fatal("partition 1 of ordinals from 5 must update web-6 only")
	}
}

// TestStatefulSet_propertyOrderedAndPartitionedAndConverges drives random
// StatefulSets through random changes (scale, template, partition,
// policy) with pods that become ready late or fail, and checks at every
// plan: OrderedReady never creates ordinal i unless start..i-1 are all
// Running and Ready; a rolling update never deletes a pod below the
// partition unless it failed; and once pods stop failing, it converges:
// every ordinal from the partition up on the update revision.
func TestStatefulSet_propertyOrderedAndPartitionedAndConverges(t *testing.T) {
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 13))
		s := newStsSim(t)
		s.ready = func(*corev1.Pod) bool { return rng.IntN(3) > 0 }
		desired := sts("web", int32(rng.IntN(5)), "web:1")
		if rng.IntN(3) == 0 {
			desired.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		}
		for step := range 40 {
			if rng.IntN(6) == 0 {
				switch rng.IntN(3) {
				case 0:
					desired.Spec.Replicas = ptr(int32(rng.IntN(5)))
				case 1:
					desired = withImage(desired, "web:"+strconv.Itoa(rng.IntN(4)))
				case 2:
					desired = withPartition(desired, int32(rng.IntN(4)))
				}
			}
			if rng.IntN(10) == 0 && len(s.o.Pods) > 0 {
				i := rng.IntN(len(s.o.Pods))
				s.o = setPod(t, s.o, "default/"+s.o.Pods[i].Name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
			}
			before := s.o
			actions := s.plan(desiredSts(desired))
			checkStatefulSetStep(t, seed, step, &desired, before, actions)
			if rng.IntN(2) == 0 {
				s.agent()
			}
		}
		s.ready = func(*corev1.Pod) bool { return true }
		s.settle(desiredSts(desired))
		start, part := 0, partition(&desired)
		rev := StatefulSetRevision(&desired, &desired.Spec.Template)
		if len(s.o.Pods) != statefulSetReplicas(&desired) {
			t.Fatalf("seed %d: %d pods, want %d", seed, len(s.o.Pods), statefulSetReplicas(&desired))
		}
		for _, p := range s.o.Pods {
			n, _ := stsOrdinal(&desired, p.Name)
			if n-start >= part && podRevision(p) != rev {
				t.Fatalf("seed %d: %s on %s, want %s", seed, p.Name, podRevision(p), rev)
			}
		}
		if done, msg := StatefulSetStatus(s.stored("web")); !done {
			t.Fatalf("seed %d: settled but %s", seed, msg)
		}
	}
}

func checkStatefulSetStep(t *testing.T, seed uint64, step int, desired *appsv1.StatefulSet, before Observed, actions []Action) {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	for _, p := range before.Pods {
		pods[p.Name] = p
	}
	for _, a := range actions {
		switch {
		case a.Type == CreatePod && desired.Spec.PodManagementPolicy == appsv1.OrderedReadyPodManagement:
			n, _ := stsOrdinal(desired, a.Pod.Name)
			for i := range n {
				p := pods[fmt.Sprintf("web-%d", i)]
				if p == nil || !kube.PodReady(p) || p.Status.Phase != corev1.PodRunning {
					t.Fatalf("seed %d step %d: created %s while web-%d is not Running and Ready", seed, step, a.Pod.Name, i)
				}
			}
		case a.Type == DeletePod && strings.HasPrefix(a.Reason, "rolling update"):
			n, _ := stsOrdinal(desired, a.Name)
			if n < partition(desired) {
				t.Fatalf("seed %d step %d: rolling update deleted %s below partition %d", seed, step, a.Name, partition(desired))
			}
		}
	}
}
