package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/kube"
	"bosun/manifest"
)

// ---- a simulated cluster for Jobs and CronJobs ----

// batchSim is a cluster the tests drive: the planner's actions are applied
// to it as the store would keep them, and the test plays the node agent
// (runs, finishes and restarts pods) and the clock.
type batchSim struct {
	t       testing.TB
	start   time.Time
	now     time.Time
	desired *manifest.Set
	o       Observed
	last    Result
	// loc prints times of cron scenarios; UTC by default. absolute prints
	// times as dates (after "at" or a time zone), not offsets from start.
	loc      *time.Location
	absolute bool
}

func newBatchSim(t testing.TB, now time.Time) *batchSim {
	return &batchSim{t: t, start: now, now: now, desired: &manifest.Set{}, loc: time.UTC,
		o: Observed{Nodes: []corev1.Node{node("n1", "64"), node("n2", "64")}}}
}

// plan plans and applies the actions, as the driver does.
func (s *batchSim) plan() Result {
	s.t.Helper()
	dec := Plan(s.desired, s.o, s.now)
	s.o = applyAll(s.t, s.o, dec.Actions, s.now)
	s.last = dec
	return dec
}

// settle plans until a plan decides nothing (at most a few plans), and
// fails if it does not converge.
func (s *batchSim) settle() []Result {
	s.t.Helper()
	var out []Result
	for range 5 {
		dec := s.plan()
		if len(dec.Actions) == 0 {
			return out
		}
		out = append(out, dec)
	}
	s.t.Fatalf("no fixpoint after 5 plans; last actions:\n%s", strings.Join(summarize(s.last.Actions), "\n"))
	return nil
}

// applyAll does to Observed what the store does with every action.
func applyAll(t testing.TB, o Observed, actions []Action, now time.Time) Observed {
	t.Helper()
	pods := byKey(o.Pods, func(p **corev1.Pod) string { return key((*p).Namespace, (*p).Name) })
	jobs := byKey(o.Jobs, func(j *batchv1.Job) string { return key(j.Namespace, j.Name) })
	crons := byKey(o.CronJobs, func(c *batchv1.CronJob) string { return key(c.Namespace, c.Name) })
	var rest []Action
	for _, a := range actions {
		switch a.Type {
		case CreatePod, UpdatePod:
			k := key(a.Pod.Namespace, a.Pod.Name)
			if _, exists := pods[k]; exists != (a.Type == UpdatePod) {
				t.Fatalf("%s %s: pod exists = %v", a.Type, k, exists)
			}
			p := roundTrip(t, a.Pod)
			if a.Type == CreatePod {
				p.CreationTimestamp = metav1.NewTime(now.Truncate(time.Second)) // as the server does
				p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: p.Status.Conditions}
			}
			pods[k] = &p
		case DeletePod:
			k := key(a.Namespace, a.Name)
			if _, exists := pods[k]; !exists {
				t.Fatalf("DeletePod %s: no such pod", k)
			}
			delete(pods, k)
		case PutJob:
			jobs[key(a.Job.Namespace, a.Job.Name)] = roundTrip(t, a.Job)
		case DeleteJob:
			k := key(a.Namespace, a.Name)
			if _, exists := jobs[k]; !exists {
				t.Fatalf("DeleteJob %s: no such job", k)
			}
			delete(jobs, k)
		case PutCronJob:
			if a.Job != nil {
				k := key(a.Job.Namespace, a.Job.Name)
				if _, exists := jobs[k]; exists {
					t.Fatalf("PutCronJob %s: its run %s exists already", a.Object(), k)
				}
				jobs[k] = roundTrip(t, a.Job)
			}
			crons[key(a.CronJob.Namespace, a.CronJob.Name)] = roundTrip(t, a.CronJob)
		case DeleteCronJob:
			delete(crons, key(a.Namespace, a.Name))
		default:
			rest = append(rest, a)
		}
	}
	out := apply(t, Observed{Nodes: o.Nodes, Deployments: o.Deployments, Services: o.Services}, rest)
	for _, k := range slices.Sorted(maps.Keys(pods)) {
		out.Pods = append(out.Pods, pods[k])
	}
	for _, k := range slices.Sorted(maps.Keys(jobs)) {
		out.Jobs = append(out.Jobs, jobs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(crons)) {
		out.CronJobs = append(out.CronJobs, crons[k])
	}
	return out
}

func byKey[T any](list []T, k func(*T) string) map[string]T {
	m := make(map[string]T, len(list))
	for i := range list {
		m[k(&list[i])] = list[i]
	}
	return m
}

// pods of the sim, by phase, sorted by name.
func (s *batchSim) podsWhere(match func(*corev1.Pod) bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range s.o.Pods {
		if match(p) {
			out = append(out, p)
		}
	}
	return out
}

// change plays the agent reporting on pod p of s.o.Pods: a copy replaces it
// (observed pods are shared and never modified, as the store cache's).
func (s *batchSim) change(p *corev1.Pod) *corev1.Pod {
	i := slices.Index(s.o.Pods, p)
	if i < 0 {
		panic("change: pod " + p.Name + " is not observed")
	}
	return replacePod(s.o.Pods, i)
}

func active(p *corev1.Pod) bool { return !kube.PodFinished(p) }

func ofJob(name string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return name == "" || p.Labels[LabelJobName] == name }
}

// run plays the agent starting every bound, pending pod.
func (s *batchSim) run() int {
	n := 0
	for _, p := range s.podsWhere(func(p *corev1.Pod) bool { return p.Spec.NodeName != "" && p.Status.Phase == corev1.PodPending }) {
		at := metav1.NewTime(s.now)
		p = s.change(p)
		p.Status.Phase = corev1.PodRunning
		p.Status.StartTime = &at
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: at})
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}}}}
		n++
	}
	return n
}

// finish ends up to n running pods (of job, "" for any), oldest name first.
func (s *batchSim) finish(job string, n int, code int32) []string {
	var names []string
	for _, p := range s.podsWhere(func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && ofJob(job)(p) }) {
		if len(names) == n {
			break
		}
		at := metav1.NewTime(s.now)
		p = s.change(p)
		p.Status.Phase = corev1.PodSucceeded
		reason := "Completed"
		if code != 0 {
			p.Status.Phase, reason = corev1.PodFailed, "Error"
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: at}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, FinishedAt: at}}}}
		names = append(names, p.Name)
	}
	return names
}

// restart plays the agent restarting the container of up to n running pods
// in place (restartPolicy OnFailure).
func (s *batchSim) restart(job string, n int) {
	for _, p := range s.podsWhere(func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && ofJob(job)(p) }) {
		if n == 0 {
			return
		}
		s.change(p).Status.ContainerStatuses[0].RestartCount++
		n--
	}
}

func (s *batchSim) job(name string) *batchv1.Job {
	for i := range s.o.Jobs {
		if s.o.Jobs[i].Name == name {
			return &s.o.Jobs[i]
		}
	}
	return nil
}

// ---- builders ----

func testJob(name string, completions, parallelism int32) batchv1.Job {
	j := batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{
			Parallelism: &parallelism,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       podSpec("task:v1", "100m"),
			},
		},
	}
	if completions >= 0 {
		j.Spec.Completions = &completions
	}
	j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	backoff := int32(manifest.DefaultBackoffLimit)
	j.Spec.BackoffLimit = &backoff
	mode := batchv1.NonIndexedCompletion
	j.Spec.CompletionMode = &mode
	f := false
	j.Spec.Suspend = &f
	return j
}

func testCronJob(name, schedule string) batchv1.CronJob {
	j := testJob(name, 1, 1)
	s, f := int32(manifest.DefaultSuccessfulJobsHistoryLimit), int32(manifest.DefaultFailedJobsHistoryLimit)
	suspend := false
	return batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.CronJobSpec{
			Schedule:                   schedule,
			ConcurrencyPolicy:          batchv1.AllowConcurrent,
			Suspend:                    &suspend,
			SuccessfulJobsHistoryLimit: &s,
			FailedJobsHistoryLimit:     &f,
			JobTemplate:                batchv1.JobTemplateSpec{Spec: j.Spec},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// ---- scenario scripts (testdata/*.txt; -rewrite regenerates them) ----

// TestBatchScenarios runs the scripts under testdata/batch. Commands:
//
//	job NAME [completions=N|none] [parallelism=N] [backoff=N] [restart=Never|OnFailure]
//	    [deadline=S] [ttl=S] [suspend] [image=I]      put a Job in Git (replacing one of that name)
//	cronjob NAME schedule=(S) [tz=Z] [policy=P] [deadline=S] [suspend] [success=N] [failed=N]
//	    [ttl=S] [job-backoff=N]                          put a CronJob in Git (ttl, job-backoff: of its Jobs)
//	remove KIND NAME                                     remove it from Git
//	at TIME | tick DURATION                              set or move the clock
//	plan                                                 plan, apply; print actions, events, wake
//	settle                                               plan until nothing is left to do
//	run                                                  the agent starts every bound pending pod
//	succeed|fail [job=J] [n=N]                           running pods finish (default 1)
//	restart [job=J] [n=N]                                containers of running pods restart in place
//	lose-node NODE | lose-node job=J                    the node (of J's first running pod) is gone
//	taint job=J                                          a NoExecute taint on the node of J's first running pod
//	status                                               every Job and CronJob, one line each
//	wake [n=N] [run]                                     N times: move to the last plan's wake and plan;
//	                                                     print each plan's events (and start pods)
func TestBatchScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/batch", func(t *testing.T, path string) {
		s := newBatchSim(t, t0)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			s.t = t
			return s.command(d)
		})
	})
}

func (s *batchSim) command(d *datadriven.TestData) string {
	t := s.t
	arg := func(k, def string) string {
		for _, a := range d.CmdArgs {
			if a.Key == k {
				if len(a.Vals) == 0 {
					return "true"
				}
				return strings.Join(a.Vals, ",")
			}
		}
		return def
	}
	num := func(k string, def int) int {
		v, err := strconv.Atoi(arg(k, strconv.Itoa(def)))
		if err != nil {
			d.Fatalf(t, "%s: %v", k, err)
		}
		return v
	}
	name := func() string {
		if len(d.CmdArgs) == 0 || len(d.CmdArgs[0].Vals) != 0 {
			d.Fatalf(t, "%s: name the object first", d.Cmd)
		}
		return d.CmdArgs[0].Key
	}
	var b strings.Builder
	switch d.Cmd {
	case "job":
		completions := int32(-1)
		if arg("completions", "") != "none" {
			completions = int32(num("completions", 1))
		}
		j := testJob(name(), completions, int32(num("parallelism", 1)))
		s.jobOptions(&j.Spec, arg, num)
		s.desired.Jobs = upsert(s.desired.Jobs, j)
	case "cronjob":
		cj := testCronJob(name(), arg("schedule", "* * * * *"))
		if tz := arg("tz", ""); tz != "" {
			cj.Spec.TimeZone = &tz
			if loc, err := time.LoadLocation(tz); err == nil {
				s.loc, s.absolute = loc, true
			}
		}
		cj.Spec.ConcurrencyPolicy = batchv1.ConcurrencyPolicy(arg("policy", "Allow"))
		if v := arg("deadline", ""); v != "" {
			cj.Spec.StartingDeadlineSeconds = ptr(int64(num("deadline", 0)))
		}
		cj.Spec.Suspend = ptr(arg("suspend", "") == "true")
		cj.Spec.SuccessfulJobsHistoryLimit = ptr(int32(num("success", 3)))
		cj.Spec.FailedJobsHistoryLimit = ptr(int32(num("failed", 1)))
		if v := arg("ttl", ""); v != "" {
			cj.Spec.JobTemplate.Spec.TTLSecondsAfterFinished = ptr(int32(num("ttl", 0)))
		}
		if v := arg("job-backoff", ""); v != "" {
			cj.Spec.JobTemplate.Spec.BackoffLimit = ptr(int32(num("job-backoff", 6)))
		}
		if v := arg("job-image", ""); v != "" {
			cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = v
		}
		s.desired.CronJobs = upsert(s.desired.CronJobs, cj)
	case "remove":
		kind, n := d.CmdArgs[0].Key, d.CmdArgs[1].Key
		switch kind {
		case "job":
			s.desired.Jobs = slices.DeleteFunc(s.desired.Jobs, func(j batchv1.Job) bool { return j.Name == n })
		case "cronjob":
			s.desired.CronJobs = slices.DeleteFunc(s.desired.CronJobs, func(j batchv1.CronJob) bool { return j.Name == n })
		}
	case "at":
		at, err := time.Parse(time.RFC3339, d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "at: %v", err)
		}
		s.now, s.absolute = at, true
	case "tick":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "tick: %v", err)
		}
		s.now = s.now.Add(dur)
	case "plan":
		dec := s.plan()
		s.printDecision(&b, dec, true)
	case "settle":
		for _, dec := range s.settle() {
			s.printDecision(&b, dec, true)
		}
	case "run":
		fmt.Fprintf(&b, "%d started\n", s.run())
	case "succeed", "fail":
		code := int32(0)
		if d.Cmd == "fail" {
			code = 1
		}
		names := s.finish(arg("job", ""), num("n", 1), code)
		fmt.Fprintf(&b, "%s: %s\n", d.Cmd, strings.Join(names, " "))
	case "restart":
		s.restart(arg("job", ""), num("n", 1))
	case "lose-node":
		var n string
		if j := arg("job", ""); j != "" {
			if pods := s.podsWhere(func(p *corev1.Pod) bool { return active(p) && ofJob(j)(p) && p.Spec.NodeName != "" }); len(pods) > 0 {
				n = pods[0].Spec.NodeName
			}
		} else {
			n = name()
		}
		s.o.Nodes = slices.DeleteFunc(s.o.Nodes, func(x corev1.Node) bool { return x.Name == n })
		fmt.Fprintf(&b, "lost %s\n", n)
	case "taint":
		// taint job=J: a NoExecute taint, tolerated by nothing, on the node
		// of J's first running pod.
		pods := s.podsWhere(func(p *corev1.Pod) bool { return active(p) && ofJob(arg("job", ""))(p) && p.Spec.NodeName != "" })
		if len(pods) == 0 {
			d.Fatalf(t, "taint: no running pod")
		}
		for i := range s.o.Nodes {
			if n := &s.o.Nodes[i]; n.Name == pods[0].Spec.NodeName {
				n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: s.now}})
				fmt.Fprintf(&b, "tainted %s\n", n.Name)
			}
		}
	case "status":
		s.printStatus(&b)
	case "wake":
		for range num("n", 1) {
			if s.last.Wake.IsZero() {
				b.WriteString("no wake-up\n")
				break
			}
			s.now = s.last.Wake
			dec := s.plan()
			fmt.Fprintf(&b, "%s:", s.clock(s.now))
			if len(dec.Events) == 0 {
				b.WriteString(" (nothing)")
			}
			b.WriteString("\n")
			for _, e := range dec.Events {
				fmt.Fprintf(&b, "  %s\n", s.event(e))
			}
			if arg("run", "") == "true" {
				s.run()
				s.finish("", 100, 0)
				s.settle()
			}
		}
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	return b.String()
}

func (s *batchSim) jobOptions(spec *batchv1.JobSpec, arg func(k, def string) string, num func(string, int) int) {
	spec.BackoffLimit = ptr(int32(num("backoff", 6)))
	spec.Template.Spec.RestartPolicy = corev1.RestartPolicy(arg("restart", "Never"))
	if arg("deadline", "") != "" {
		spec.ActiveDeadlineSeconds = ptr(int64(num("deadline", 0)))
	}
	if arg("ttl", "") != "" {
		spec.TTLSecondsAfterFinished = ptr(int32(num("ttl", 0)))
	}
	spec.Suspend = ptr(arg("suspend", "") == "true")
	spec.Template.Spec.Containers[0].Image = arg("image", "task:v1")
}

func upsert[T any, PT interface {
	*T
	metav1.Object
}](list []T, v T) []T {
	n := PT(&v).GetName()
	i := slices.IndexFunc(list, func(x T) bool { return PT(&x).GetName() == n })
	if i >= 0 {
		list[i] = v
		return list
	}
	list = append(list, v)
	slices.SortFunc(list, func(a, b T) int { return cmp.Compare(PT(&a).GetName(), PT(&b).GetName()) })
	return list
}

// clock prints a time of the scenario: as an offset from its start, or in
// the cron scenario's time zone when one was set.
func (s *batchSim) clock(t time.Time) string {
	if s.absolute {
		return t.In(s.loc).Format("2006-01-02 15:04:05 MST")
	}
	return "+" + t.Sub(s.start).String()
}

func (s *batchSim) event(e Event) string {
	line := fmt.Sprintf("event %s/%s %s: %s", strings.ToLower(e.Kind), e.Name, e.Reason, e.Message)
	if e.Count > 1 {
		line += fmt.Sprintf(" [%d runs]", e.Count)
	}
	return line
}

func (s *batchSim) printDecision(b *strings.Builder, dec Result, actions bool) {
	if actions {
		for _, a := range dec.Actions {
			line := fmt.Sprintf("%s %s", a.Type, a.Object())
			if a.Type == PutCronJob && a.Job != nil {
				line += " +job/" + a.Job.Name
			}
			fmt.Fprintf(b, "%s: %s\n", line, a.Reason)
		}
	}
	for _, e := range dec.Events {
		fmt.Fprintf(b, "%s\n", s.event(e))
	}
	if dec.Wake.IsZero() {
		b.WriteString("wake: none\n")
	} else {
		fmt.Fprintf(b, "wake: %s\n", s.clock(dec.Wake))
	}
}

func (s *batchSim) printStatus(b *strings.Builder) {
	for _, j := range s.o.Jobs {
		st := j.Status
		fmt.Fprintf(b, "job/%s: active=%d ready=%d succeeded=%d failed=%d", j.Name, st.Active, deref(st.Ready), st.Succeeded, st.Failed)
		for _, c := range st.Conditions {
			fmt.Fprintf(b, " %s=%s", c.Type, c.Status)
			if c.Reason != "" {
				fmt.Fprintf(b, "(%s)", c.Reason)
			}
		}
		if st.StartTime != nil {
			fmt.Fprintf(b, " start=%s", s.clock(st.StartTime.Time))
		}
		if st.CompletionTime != nil {
			fmt.Fprintf(b, " completion=%s", s.clock(st.CompletionTime.Time))
		}
		if j.Annotations[AnnotationExpired] != "" {
			b.WriteString(" (expired record)")
		}
		pods := s.podsWhere(ofJob(j.Name))
		var phases []string
		for _, p := range pods {
			phases = append(phases, strings.ToLower(string(p.Status.Phase)))
		}
		fmt.Fprintf(b, " pods=[%s]\n", strings.Join(phases, " "))
	}
	for _, cj := range s.o.CronJobs {
		st := cj.Status
		fmt.Fprintf(b, "cronjob/%s: active=%d", cj.Name, len(st.Active))
		if st.LastScheduleTime != nil {
			fmt.Fprintf(b, " last=%s", s.clock(st.LastScheduleTime.Time))
		}
		if st.LastSuccessfulTime != nil {
			fmt.Fprintf(b, " lastSuccess=%s", s.clock(st.LastSuccessfulTime.Time))
		}
		if v := cj.Annotations[AnnotationLastSkip]; v != "" {
			fmt.Fprintf(b, " lastSkip=%q", v)
		}
		b.WriteString("\n")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
