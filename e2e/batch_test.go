package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"bosun/nodes"
	"bosun/reconciler"
)

const failingJobs = `apiVersion: batch/v1
kind: Job
metadata:
  name: broken
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: task
        image: localhost/bosun-hello:v1
        args: ["-print", "giving up", "-exit", "3"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: crashloop
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: task
        image: localhost/bosun-hello:v1
        args: ["-exit", "1"]
`

func (s *stack) jobs() []batchv1.Job {
	s.t.Helper()
	var list struct{ Items []batchv1.Job }
	if err := s.getJSON("/api/v1/jobs", &list); err != nil {
		s.t.Fatal(err)
	}
	return list.Items
}

func (s *stack) job(name string) *batchv1.Job {
	for _, j := range s.jobs() {
		if j.Name == name {
			return &j
		}
	}
	return nil
}

func jobCondition(j *batchv1.Job) string {
	if c := reconciler.JobFinished(&j.Status); c != nil {
		return string(c.Type) + "/" + c.Reason
	}
	return "running"
}

func jobPods(pods []corev1.Pod, job string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Labels[reconciler.LabelJobName] == job {
			out = append(out, p)
		}
	}
	return out
}

// TestBatch runs examples/batch and two failing Jobs on the real stack:
// the Job with completions 3 and parallelism 2 completes and `bosun get
// jobs` says 3/3; `bosun logs job/pi` prints its output; the CronJob runs a
// Job that completes; a Job whose pods fail (restartPolicy Never) and one
// whose container keeps failing (OnFailure) reach their backoffLimit and
// show Failed, in `bosun get jobs` and `bosun status`.
func TestBatch(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.copyDir("../examples/batch")
	repo.write("failing/jobs.yaml", failingJobs)
	repo.commit("jobs and a cronjob")
	s := startStack(t, repo)
	start := time.Now()

	t.Run("a Job with completions 3 and parallelism 2 completes", func(t *testing.T) {
		maxActive := 0
		s.waitFor("job pi complete", 60*time.Second, func() error {
			running := 0
			for _, p := range jobPods(s.pods(), "pi") {
				if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
					running++
				}
			}
			maxActive = max(maxActive, running)
			j := s.job("pi")
			if j == nil || jobCondition(j) != "Complete/"+reconciler.ReasonCompletionsReached {
				return fmt.Errorf("job pi: %+v", j)
			}
			return nil
		})
		t.Logf("job pi complete %v after the server started; at most %d pods seen active (parallelism 2)", time.Since(start).Round(time.Millisecond), maxActive)
		if maxActive > 2 {
			t.Errorf("%d pods of pi active at once, parallelism is 2", maxActive)
		}
		pods := jobPods(s.pods(), "pi")
		if len(pods) != 3 {
			t.Errorf("pi has %d pods, want 3 (finished pods are kept)", len(pods))
		}
		for _, p := range pods {
			if p.Status.Phase != corev1.PodSucceeded || p.Labels[reconciler.LabelBatchJobName] != "pi" || !strings.HasPrefix(p.Name, "pi-") || len(p.Name) != len("pi-")+5 {
				t.Errorf("pod %s: phase %s labels %v", p.Name, p.Status.Phase, p.Labels)
			}
		}
		out, err := s.cli("get", "jobs")
		if err != nil || !rowHas(out, "pi", "Complete", "3/3") {
			t.Errorf("bosun get jobs: %v\n%s", err, out)
		}
		t.Logf("bosun get jobs:\n%s", out)
	})

	t.Run("bosun logs job/NAME prints its output", func(t *testing.T) {
		out, err := s.cli("logs", "job/pi")
		if err != nil || !strings.Contains(out, "3.14159 26535 89793") || !strings.Contains(out, "Found 3 pods, using pod/pi-") {
			t.Errorf("bosun logs job/pi: %v\n%s", err, out)
		}
		if out, err := s.cli("logs", "job/nosuch"); err == nil || !strings.Contains(out, "has no pods") {
			t.Errorf("bosun logs job/nosuch: %v\n%s", err, out)
		}
	})

	t.Run("a failing Job reaches its backoffLimit and shows Failed", func(t *testing.T) {
		s.waitFor("jobs broken and crashloop failed", 90*time.Second, func() error {
			for _, name := range []string{"broken", "crashloop"} {
				j := s.job(name)
				if j == nil || jobCondition(j) != "Failed/"+reconciler.ReasonBackoffLimitExceeded {
					return fmt.Errorf("job %s: %+v", name, j)
				}
			}
			return nil
		})
		broken := jobPods(s.pods(), "broken")
		if len(broken) != 2 || s.job("broken").Status.Failed != 2 {
			t.Errorf("broken: %d pods, status %+v; want 2 failed pods (backoffLimit 1)", len(broken), s.job("broken").Status)
		}
		if pods := jobPods(s.pods(), "crashloop"); len(pods) != 0 {
			t.Errorf("crashloop's pod still exists after the Job failed: %d", len(pods))
		}
		out, err := s.cli("get", "jobs")
		if err != nil || !rowHas(out, "broken", "Failed", "0/1") || !rowHas(out, "crashloop", "Failed") {
			t.Errorf("bosun get jobs: %v\n%s", err, out)
		}
		out, err = s.cli("status")
		if err != nil || !strings.Contains(out, "Failed jobs: 2") || !strings.Contains(out, "default/broken: BackoffLimitExceeded") {
			t.Errorf("bosun status: %v\n%s", err, out)
		}
		out, err = s.cli("logs", "job/broken")
		if err != nil || !strings.Contains(out, "giving up") {
			t.Errorf("bosun logs job/broken: %v\n%s", err, out)
		}
	})

	t.Run("a CronJob * * * * * runs a Job that completes", func(t *testing.T) {
		var run string
		s.waitFor("a run of tick complete", 100*time.Second, func() error {
			for _, j := range s.jobs() {
				if strings.HasPrefix(j.Name, "tick-") && jobCondition(&j) == "Complete/"+reconciler.ReasonCompletionsReached {
					run = j.Name
					return nil
				}
			}
			return fmt.Errorf("no complete run of tick yet")
		})
		out, err := s.cli("get", "cronjobs")
		if err != nil || !rowHas(out, "tick", "* * * * *", "Europe/Berlin", "false") {
			t.Errorf("bosun get cronjobs: %v\n%s", err, out)
		}
		t.Logf("bosun get cronjobs:\n%s", out)
		if out, err := s.cli("logs", "job/"+run); err != nil || !strings.Contains(out, "tick") {
			t.Errorf("bosun logs job/%s: %v\n%s", run, err, out)
		}
		if out, err := s.cli("get", "cronjob", "tick", "-o", "yaml"); err != nil || !strings.Contains(out, "lastScheduleTime:") || !strings.Contains(out, "kind: CronJob") {
			t.Errorf("bosun get cronjob tick -o yaml: %v\n%s", err, out)
		}
		m := s.metrics()
		for _, want := range []string{`bosun_cronjob_runs_total{outcome="started"}`, `bosun_job_outcomes_total{outcome="complete"}`,
			`bosun_job_outcomes_total{outcome="backoff_limit"} 2`, "bosun_cronjob_start_delay_seconds_count"} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("the revision is applied, not progressing", func(t *testing.T) {
		s.waitFor("history says applied", 10*time.Second, func() error {
			out, err := s.cli("history")
			if err != nil || !strings.Contains(out, "applied") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	})
}

// rowHas reports whether a line of a table starts (after its namespace)
// with name and holds every cell.
func rowHas(table, name string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != name {
			continue
		}
		ok := true
		for _, c := range cells {
			ok = ok && strings.Contains(line, c)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestCronJobFailover runs two control-plane replicas on one etcd and a
// node agent, with a CronJob that runs every minute. The leader is killed
// (SIGKILL: it cannot resign) twice: 1.5 s before a scheduled minute, so
// the run is due while no replica leads, and 300 ms after one, when the
// old leader has just started it. Every scheduled minute from the first
// run on has exactly one Job, whose one pod ran to completion, and no Job
// was ever replaced by another of the same name.
func TestCronJobFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	endpoints := sharedEtcd(t)

	repo := newGitRepo(t)
	repo.write("cronjob.yaml", `apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 10
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: task
            image: localhost/bosun-hello:v1
            args: ["-print", "tick"]
`)
	repo.commit("a cronjob")
	replicas := map[string]*stack{
		"replica-a": startControlPlane(t, repo.dir, "--etcd-endpoints", endpoints, "--id", "replica-a"),
		"replica-b": startControlPlane(t, repo.dir, "--etcd-endpoints", endpoints, "--id", "replica-b"),
	}
	a := replicas["replica-a"]
	startAgent(t, &stack{t: t, etcdAddr: strings.TrimPrefix(endpoints, "http://")}, "node-a")

	// Every Job's UID and pods, as seen by polling: a run started twice
	// would show as a second UID or a second pod.
	var mu sync.Mutex
	uids, podsOf := map[string]map[string]bool{}, map[string]map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var jobs struct{ Items []batchv1.Job }
			var pods struct{ Items []corev1.Pod }
			for _, s := range replicas {
				if s.getJSON("/api/v1/jobs", &jobs) == nil && s.getJSON("/api/v1/pods", &pods) == nil {
					break
				}
			}
			mu.Lock()
			for _, j := range jobs.Items {
				if uids[j.Name] == nil {
					uids[j.Name] = map[string]bool{}
				}
				uids[j.Name][string(j.UID)] = true
			}
			for _, p := range pods.Items {
				if job := p.Labels[reconciler.LabelJobName]; job != "" {
					if podsOf[job] == nil {
						podsOf[job] = map[string]bool{}
					}
					podsOf[job][string(p.UID)] = true
				}
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer func() { stop(); wg.Wait() }()

	leaderOf := func() *stack {
		for _, s := range replicas {
			if st, err := s.status(); err == nil && replicas[st.Leader] != nil {
				return replicas[st.Leader]
			}
		}
		return nil
	}
	a.waitFor("a leader", 30*time.Second, func() error {
		if leaderOf() == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	nextMinute := func() time.Time { return time.Now().Truncate(time.Minute).Add(time.Minute) }
	killAt := func(at time.Time) (killed time.Time) {
		l := leaderOf()
		time.Sleep(time.Until(at))
		l.stop(syscall.SIGKILL)
		killed = time.Now()
		var other *stack
		for _, s := range replicas {
			if s != l {
				other = s
			}
		}
		other.waitFor("the other replica to lead", 15*time.Second, func() error {
			if leaderOf() != other {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		t.Logf("killed the leader at %s; the other replica led after %v", killed.Format("15:04:05.000"), time.Since(killed).Round(time.Millisecond))
		l.start() // back as a follower
		return killed
	}
	// Let one run happen normally first, unless the minute is too close.
	first := nextMinute()
	if time.Until(first) < 5*time.Second {
		first = first.Add(time.Minute)
	}
	before := first.Add(time.Minute)
	killAt(before.Add(-1500 * time.Millisecond))
	after := before.Add(time.Minute)
	killAt(after.Add(300 * time.Millisecond))
	last := after.Add(time.Minute)
	a.waitFor("the run after the failovers to complete", 90*time.Second, func() error {
		j := leaderOf().job(fmt.Sprintf("tick-%d", last.Unix()/60))
		if j == nil || j.Status.Succeeded != 1 {
			return fmt.Errorf("run of %s: %+v", last.Format("15:04"), j)
		}
		return nil
	})
	stop()
	wg.Wait()

	s := leaderOf()
	jobs := s.jobs()
	byName := map[string]*batchv1.Job{}
	for i := range jobs {
		byName[jobs[i].Name] = &jobs[i]
	}
	for m := first; !m.After(last); m = m.Add(time.Minute) {
		name := fmt.Sprintf("tick-%d", m.Unix()/60)
		j := byName[name]
		if j == nil {
			t.Errorf("minute %s: no Job %s (skipped); jobs: %v", m.Format("15:04"), name, slices.Sorted(maps.Keys(byName)))
			continue
		}
		mu.Lock()
		nUIDs, nPods := len(uids[name]), len(podsOf[name])
		mu.Unlock()
		if nUIDs != 1 || nPods != 1 {
			t.Errorf("minute %s: job %s had %d UIDs and %d pods over time, want 1 and 1 (doubled)", m.Format("15:04"), name, nUIDs, nPods)
		}
		if j.Status.Succeeded != 1 || j.Status.Failed != 0 {
			t.Errorf("minute %s: job %s status %+v, want its one pod succeeded", m.Format("15:04"), name, j.Status)
		}
		pods := jobPods(s.pods(), name)
		if len(pods) != 1 || pods[0].Status.Phase != corev1.PodSucceeded {
			t.Errorf("minute %s: pods of %s: %d", m.Format("15:04"), name, len(pods))
		}
		t.Logf("minute %s: %s ran once (%s)", m.Format("15:04:05"), name, j.Annotations[reconciler.AnnotationScheduledTimestamp])
	}
}

// TestCronScheduleAccuracy measures how late CronJob runs start: from the
// scheduled time to the moment containerd starts the run's container (the
// task start event, which containerd timestamps). It is slow by nature (a
// five-field schedule runs at most once a minute), so it runs only when
// BOSUN_CRON_ACCURACY is set:
//
//	BOSUN_CRON_ACCURACY=20 go test ./e2e -run TestCronScheduleAccuracy -v -timeout 40m
//
// measures 20 runs of one CronJob * * * * *, one a minute, on an otherwise
// idle stack: every run takes the whole path (the leader's timer, a plan, a
// fenced etcd transaction, the agent's watch, sandbox and container start).
// BOSUN_CRON_CRONJOBS=N runs N such CronJobs at once (their runs coincide:
// the same path under load, N samples a minute).
func TestCronScheduleAccuracy(t *testing.T) {
	t.Parallel()
	runs, _ := strconv.Atoi(os.Getenv("BOSUN_CRON_ACCURACY"))
	if runs <= 0 {
		t.Skip("set BOSUN_CRON_ACCURACY=<runs> to measure (one run a minute)")
	}
	cronjobs, _ := strconv.Atoi(os.Getenv("BOSUN_CRON_CRONJOBS"))
	cronjobs = max(cronjobs, 1)
	repo := newGitRepo(t)
	for i := range cronjobs {
		repo.write(fmt.Sprintf("cron%d.yaml", i), fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick%d
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: task
            image: localhost/bosun-hello:v1
            args: ["-print", "tick"]
`, i))
	}
	repo.commit("cronjobs")
	s := startStack(t, repo)
	starts := watchTaskStarts(t, s.containerd)
	var delays []time.Duration
	for len(delays) < runs {
		select {
		case st := <-starts:
			job, _, ok := cutLast(st.pod, "-")
			if !ok {
				continue
			}
			_, minutes, ok := cutLast(job, "-")
			n, err := strconv.ParseInt(minutes, 10, 64)
			if !ok || err != nil || !strings.HasPrefix(job, "tick") {
				continue
			}
			d := st.at.Sub(time.Unix(n*60, 0))
			delays = append(delays, d)
			t.Logf("run %d: job %s: container started %v after its scheduled time", len(delays), job, d.Round(time.Millisecond))
		case <-time.After(3 * time.Minute):
			t.Fatalf("no run started for 3 minutes (%d measured)", len(delays))
		}
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	p := func(q float64) time.Duration { return delays[min(int(q*float64(len(delays))), len(delays)-1)] }
	t.Logf("CronJob schedule accuracy over %d runs (%d CronJobs): p50 %v, p99 %v, max %v (scheduled time -> container started)",
		len(delays), cronjobs, p(0.50).Round(time.Millisecond), p(0.99).Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
	m := s.metrics()
	sum, count := metricValue(m, "bosun_cronjob_start_delay_seconds_sum"), metricValue(m, "bosun_cronjob_start_delay_seconds_count")
	if count > 0 {
		t.Logf("of which scheduled time -> Job and pod written in etcd (bosun_cronjob_start_delay_seconds): mean %v over %.0f runs",
			time.Duration(sum/count*float64(time.Second)).Round(time.Millisecond), count)
	}
	if p(0.99) > time.Second {
		t.Errorf("p99 %v: the target is under 1 s", p(0.99))
	}
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// taskStart is a container started by containerd: its pod, and when.
type taskStart struct {
	pod string
	at  time.Time
}

// watchTaskStarts reports every container containerd starts, with the time
// containerd stamped on its task start event.
func watchTaskStarts(t *testing.T, address string) <-chan taskStart {
	c, err := client.New(address)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan taskStart, 64)
	events, errs := c.Subscribe(ctx, `topic=="/tasks/start"`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case env := <-events:
				v, err := typeurl.UnmarshalAny(env.Event)
				start, ok := v.(*apievents.TaskStart)
				if err != nil || !ok {
					continue
				}
				info, err := c.ContainerService().Get(namespaces.WithNamespace(ctx, env.Namespace), start.ContainerID)
				if err != nil {
					continue
				}
				select {
				case out <- taskStart{pod: info.Labels[nodes.LabelPodName], at: env.Timestamp}:
				default:
				}
			case err := <-errs:
				if ctx.Err() == nil {
					t.Errorf("containerd events: %v", err)
				}
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return out
}

// metricValue reads an unlabelled sample from a /metrics page; 0 if absent.
func metricValue(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
