package reconciler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/manifest"
)

func TestWantActive(t *testing.T) {
	for _, tc := range []struct {
		completions  *int32
		parallelism  int32
		succeeded    int32
		active, want int
	}{
		{ptr[int32](3), 2, 0, 0, 2},
		{ptr[int32](3), 2, 2, 1, 1}, // one completion missing: one pod
		{ptr[int32](3), 5, 0, 0, 3}, // never more than the completions missing
		{ptr[int32](3), 2, 3, 0, 0},
		{ptr[int32](3), 0, 0, 2, 0}, // parallelism 0 pauses the Job
		{nil, 3, 0, 1, 3},           // a work queue: parallelism until one succeeds...
		{nil, 3, 1, 2, 2},           // ...then no new pod
		{nil, 1, 1, 2, 1},
	} {
		spec := &batchv1.JobSpec{Completions: tc.completions, Parallelism: &tc.parallelism}
		if got := wantActive(spec, tc.succeeded, tc.active); got != tc.want {
			t.Errorf("completions %v parallelism %d succeeded %d active %d: want %d pods, got %d",
				deref(tc.completions), tc.parallelism, tc.succeeded, tc.active, tc.want, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 320 * time.Second, 6 * time.Minute, 6 * time.Minute}
	for i, w := range want {
		if got := backoffDelay(i + 1); got != w {
			t.Errorf("after %d failures: %v, want %v", i+1, got, w)
		}
	}
	finished := func(phase corev1.PodPhase, at time.Time) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(at)}}}}}}
	}
	f1, f2 := finished(corev1.PodFailed, t0), finished(corev1.PodFailed, t0.Add(time.Minute))
	ok := finished(corev1.PodSucceeded, t0.Add(30*time.Second))
	if got := backoffUntil(nil, []*corev1.Pod{f1, f2}); !got.Equal(t0.Add(time.Minute + 20*time.Second)) {
		t.Errorf("two failures: until %v", got)
	}
	if got := backoffUntil([]*corev1.Pod{ok}, []*corev1.Pod{f1, f2}); !got.Equal(t0.Add(time.Minute + 10*time.Second)) {
		t.Errorf("a success resets the count: until %v", got)
	}
	if got := backoffUntil([]*corev1.Pod{ok}, nil); !got.IsZero() {
		t.Errorf("no failure: until %v", got)
	}
}

func TestPastBackoffLimitOnFailure(t *testing.T) {
	pod := func(restarts int32) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{RestartCount: restarts}}}}
	}
	for _, tc := range []struct {
		policy   corev1.RestartPolicy
		limit    int32
		restarts []int32
		want     bool
	}{
		{corev1.RestartPolicyOnFailure, 0, []int32{0}, false},
		{corev1.RestartPolicyOnFailure, 0, []int32{1}, true},
		{corev1.RestartPolicyOnFailure, 3, []int32{1, 1}, false},
		{corev1.RestartPolicyOnFailure, 3, []int32{2, 1}, true}, // restarts of every active pod add up
		{corev1.RestartPolicyNever, 0, []int32{5}, false},       // Never: pods fail, containers do not restart
	} {
		spec := &batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}}
		var pods []*corev1.Pod
		for _, r := range tc.restarts {
			pods = append(pods, pod(r))
		}
		if got := pastBackoffLimitOnFailure(spec, pods, tc.limit); got != tc.want {
			t.Errorf("%s limit %d restarts %v: %v, want %v", tc.policy, tc.limit, tc.restarts, got, tc.want)
		}
	}
}

func TestJobPodName_ordinalRoundTripsAndRunsDiffer(t *testing.T) {
	a := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pi", UID: "run-1"}}
	b := a.DeepCopy()
	b.UID = "run-2"
	seen := map[string]bool{}
	for i := range 500 {
		n := jobPodName(a, i)
		if !strings.HasPrefix(n, "pi-") || len(n) != len("pi-")+suffixLen {
			t.Fatalf("name %q", n)
		}
		if got, ok := jobPodOrdinal(a, n); !ok || got != i {
			t.Fatalf("ordinal of %s: %d %v, want %d", n, got, ok, i)
		}
		if seen[n] {
			t.Fatalf("name %s twice", n)
		}
		seen[n] = true
	}
	if jobPodName(a, 0) == jobPodName(b, 0) {
		t.Errorf("two runs of a Job name their first pod alike: %s", jobPodName(a, 0))
	}
}

func TestJobSpecHash_onlyWhatMakesARun(t *testing.T) {
	j := testJob("x", 3, 2)
	h := JobSpecHash(&j.Spec)
	inPlace := j.DeepCopy()
	inPlace.Spec.Parallelism = ptr[int32](5)
	inPlace.Spec.Suspend = ptr(true)
	inPlace.Spec.ActiveDeadlineSeconds = ptr[int64](30)
	inPlace.Spec.BackoffLimit = ptr[int32](1)
	inPlace.Spec.TTLSecondsAfterFinished = ptr[int32](10)
	if JobSpecHash(&inPlace.Spec) != h {
		t.Errorf("fields that apply in place change the hash")
	}
	for name, change := range map[string]func(*batchv1.JobSpec){
		"image":       func(s *batchv1.JobSpec) { s.Template.Spec.Containers[0].Image = "task:v2" },
		"label":       func(s *batchv1.JobSpec) { s.Template.Labels["x"] = "y" },
		"completions": func(s *batchv1.JobSpec) { s.Completions = ptr[int32](4) },
	} {
		c := j.DeepCopy()
		change(&c.Spec)
		if JobSpecHash(&c.Spec) == h {
			t.Errorf("%s: the hash does not change", name)
		}
	}
}

// TestJob_neverMoreThanParallelismActive drives random Jobs through random
// pod outcomes, node losses and spec changes, and checks after every plan:
// no Job has more active pods than parallelism (none while suspended) nor
// than the completions it misses; a finished Job runs nothing; the status
// counts match the pods; and planning again changes nothing.
func TestJob_neverMoreThanParallelismActive(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newBatchSim(t, t0)
		s.o.Nodes = append(s.o.Nodes, node("n3", "64"))
		for i := range 1 + rng.IntN(3) {
			s.desired.Jobs = append(s.desired.Jobs, randomJob(rng, fmt.Sprintf("j%d", i)))
		}
		for step := range 40 {
			s.now = s.now.Add(time.Duration(rng.IntN(30)) * time.Second)
			dec := s.plan()
			checkJobInvariants(t, seed, step, s)
			if again := Plan(s.desired, s.o, s.now); len(again.Actions) > 0 {
				t.Fatalf("seed %d step %d: no fixpoint: %s\nafter:\n%s", seed, step,
					strings.Join(summarize(again.Actions), "\n"), strings.Join(summarize(dec.Actions), "\n"))
			}
			switch rng.IntN(10) {
			case 0, 1, 2, 3:
				s.run()
			case 4, 5:
				s.finish("", 1+rng.IntN(2), 0)
			case 6:
				s.finish("", 1, 1)
			case 7:
				s.restart("", 1)
			case 8:
				i := rng.IntN(len(s.desired.Jobs))
				s.desired.Jobs[i] = mutateJob(rng, s.desired.Jobs[i])
			case 9:
				if len(s.o.Nodes) > 1 && rng.IntN(3) == 0 {
					s.o.Nodes = s.o.Nodes[1:]
				}
			}
		}
	}
}

func randomJob(rng *rand.Rand, name string) batchv1.Job {
	completions := int32(rng.IntN(6))
	if rng.IntN(4) == 0 {
		completions = -1 // a work queue
	}
	j := testJob(name, completions, int32(1+rng.IntN(4)))
	j.Spec.BackoffLimit = ptr(int32(rng.IntN(4)))
	if rng.IntN(2) == 0 {
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}
	if rng.IntN(4) == 0 {
		j.Spec.ActiveDeadlineSeconds = ptr(int64(60 + rng.IntN(300)))
	}
	return j
}

func mutateJob(rng *rand.Rand, j batchv1.Job) batchv1.Job {
	j = *j.DeepCopy()
	switch rng.IntN(3) {
	case 0:
		j.Spec.Parallelism = ptr(int32(rng.IntN(5)))
	case 1:
		j.Spec.Suspend = ptr(!*j.Spec.Suspend)
	case 2:
		j.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("task:v%d", rng.IntN(3))
	}
	return j
}

func checkJobInvariants(t *testing.T, seed uint64, step int, s *batchSim) {
	t.Helper()
	for _, dj := range s.desired.Jobs {
		j := s.job(dj.Name)
		if j == nil {
			t.Fatalf("seed %d step %d: job %s not stored", seed, step, dj.Name)
		}
		var act, succeeded int
		for _, p := range s.podsWhere(ofJob(dj.Name)) {
			if metav1.GetControllerOf(p).UID != j.UID {
				t.Fatalf("seed %d step %d: pod %s of an earlier run survives", seed, step, p.Name)
			}
			switch p.Status.Phase {
			case corev1.PodSucceeded:
				succeeded++
			case corev1.PodFailed:
			default:
				act++
			}
		}
		limit := int(*dj.Spec.Parallelism)
		if *dj.Spec.Suspend || JobFinished(&j.Status) != nil {
			limit = 0
		}
		if c := dj.Spec.Completions; c != nil {
			limit = min(limit, max(int(*c)-succeeded, 0))
		}
		if act > limit {
			t.Fatalf("seed %d step %d: job %s has %d active pods, at most %d allowed (parallelism %d, suspend %v, %d/%v succeeded, finished %v)",
				seed, step, dj.Name, act, limit, *dj.Spec.Parallelism, *dj.Spec.Suspend, succeeded, deref(dj.Spec.Completions), JobFinished(&j.Status) != nil)
		}
		if int(j.Status.Active) != act {
			t.Fatalf("seed %d step %d: job %s status says %d active, %d are", seed, step, dj.Name, j.Status.Active, act)
		}
		if JobFinished(&j.Status) == nil && int(j.Status.Succeeded) != succeeded {
			t.Fatalf("seed %d step %d: job %s status says %d succeeded, %d did", seed, step, dj.Name, j.Status.Succeeded, succeeded)
		}
	}
}

// TestJob_completesWhenPodsSucceed: whatever the spec, a Job whose pods
// all succeed completes, with exactly completions successes.
func TestJob_completesWhenPodsSucceed(t *testing.T) {
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 9))
		s := newBatchSim(t, t0)
		j := randomJob(rng, "j")
		j.Spec.ActiveDeadlineSeconds = nil
		s.desired.Jobs = []batchv1.Job{j}
		for range 30 {
			s.now = s.now.Add(time.Second)
			s.plan()
			s.run()
			s.finish("j", 1, 0)
		}
		got := s.job("j")
		if c := JobFinished(&got.Status); c == nil || c.Type != batchv1.JobComplete {
			t.Fatalf("seed %d: job %+v did not complete: %+v", seed, j.Spec, got.Status)
		}
		if want := j.Spec.Completions; want != nil && got.Status.Succeeded != *want {
			t.Fatalf("seed %d: %d succeeded, want %d", seed, got.Status.Succeeded, *want)
		}
	}
}

// TestCronJob_failoverNeitherSkipsNorDoubles plays two leaders around a
// scheduled time: the one that dies before it, after it planned the run
// (with or without the run's pods written), and the one that takes over.
// Exactly one Job exists for the scheduled minute, with its pods.
func TestCronJob_failoverNeitherSkipsNorDoubles(t *testing.T) {
	due := time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// oldLeader plans at this offset from the scheduled time and dies;
		// keep says which of its actions were applied.
		oldLeader time.Duration
		keep      func(Action) bool
	}{
		{"dies before the scheduled time", -300 * time.Millisecond, func(Action) bool { return true }},
		{"dies after writing the run", 5 * time.Millisecond, func(Action) bool { return true }},
		{"dies after writing the run but not its pods", 5 * time.Millisecond, func(a Action) bool { return a.Type == PutCronJob }},
		{"dies before writing anything", 5 * time.Millisecond, func(Action) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBatchSim(t, due.Add(-30*time.Second))
			s.desired.CronJobs = []batchv1.CronJob{testCronJob("tick", "* * * * *")}
			s.plan()
			s.now = due.Add(tc.oldLeader)
			dec := Plan(s.desired, s.o, s.now)
			s.o = applyAll(t, s.o, slices.DeleteFunc(dec.Actions, func(a Action) bool { return !tc.keep(a) }), s.now)
			// The new leader takes over within its session TTL and plans.
			s.now = due.Add(2500 * time.Millisecond)
			s.settle()
			var jobs []string
			for _, j := range s.o.Jobs {
				jobs = append(jobs, j.Name)
			}
			if want := []string{cronJobName(&s.desired.CronJobs[0], due)}; !slices.Equal(jobs, want) {
				t.Fatalf("jobs %v, want %v", jobs, want)
			}
			if pods := s.podsWhere(ofJob(jobs[0])); len(pods) != 1 {
				t.Fatalf("%d pods for the run, want 1", len(pods))
			}
			if got := s.o.CronJobs[0].Status.LastScheduleTime; got == nil || !got.Equal(&metav1.Time{Time: due}) {
				t.Fatalf("lastScheduleTime %v, want %v", got, due)
			}
		})
	}
}

// TestCronJob_runIsWrittenWithItsSchedule: the Job of a run rides in the
// CronJob's put, so one transaction writes both.
func TestCronJob_runIsWrittenWithItsSchedule(t *testing.T) {
	s := newBatchSim(t, t0)
	s.desired.CronJobs = []batchv1.CronJob{testCronJob("tick", "* * * * *")}
	s.plan()
	s.now = s.last.Wake
	dec := s.plan()
	var carried *batchv1.Job
	for _, a := range dec.Actions {
		switch {
		case a.Type == PutJob:
			t.Errorf("the run is written apart from its CronJob: %s", a.Object())
		case a.Type == PutCronJob:
			carried = a.Job
			if a.CronJob.Status.LastScheduleTime == nil || !a.CronJob.Status.LastScheduleTime.Time.Equal(s.now) {
				t.Errorf("lastScheduleTime %v, want %v", a.CronJob.Status.LastScheduleTime, s.now)
			}
		}
	}
	if carried == nil || carried.Status.Active != 1 || metav1.GetControllerOf(carried).Kind != "CronJob" {
		t.Fatalf("PutCronJob carries %+v", carried)
	}
	if got := carried.Annotations[AnnotationScheduledTimestamp]; got != s.now.Format(time.RFC3339) {
		t.Errorf("scheduled timestamp %q", got)
	}
}

// TestJobSpecHash_survivesTheStore: a new leader reads the desired Jobs
// back from etcd (JSON); their hash must be the one the old leader stored,
// or every Job would run again after a failover.
func TestJobSpecHash_survivesTheStore(t *testing.T) {
	set, err := manifest.Policy{}.LoadFiles(map[string][]byte{"job.yaml": []byte(`apiVersion: batch/v1
kind: Job
metadata: {name: rich}
spec:
  parallelism: 2
  completions: 4
  template:
    metadata:
      labels: {app: rich}
      annotations: {note: "x"}
    spec:
      restartPolicy: OnFailure
      containers:
      - name: task
        image: localhost/bosun-hello:v1
        args: ["-print", "hi"]
        env: [{name: A, value: "1"}, {name: B, value: ""}]
        resources:
          requests: {cpu: 500m, memory: 0.5Gi}
          limits: {memory: 1Gi}
        readinessProbe:
          exec: {command: ["true"]}
        securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}
      volumes:
      - name: scratch
        emptyDir: {medium: Memory, sizeLimit: 64Mi}
`)})
	if err != nil {
		t.Fatal(err)
	}
	j := &set.Jobs[0]
	back := roundTrip(t, j)
	if a, b := JobSpecHash(&j.Spec), JobSpecHash(&back.Spec); a != b {
		t.Fatalf("hash %s becomes %s through JSON", a, b)
	}
}
