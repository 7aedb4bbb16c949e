package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"bosun/kube"
	"bosun/store"
)

// podWorker owns everything about one pod key (namespace/name) on this node:
// its sandbox, its containers and its status. Run's loop feeds it the pod
// as bound in the store (set); the worker converges to it. When the pod
// goes away the worker tears everything down, reports on done and ends.
type podWorker struct {
	a         *Agent
	key       string
	namespace string
	name      string
	log       *slog.Logger
	done      chan<- podTask

	mu      sync.Mutex
	desired *corev1.Pod
	kick    chan struct{} // capacity 1: "desired changed"
	// cleanAck, when set, receives the worker once it runs nothing but
	// its desired pod (whenClean), and is cleared.
	cleanAck chan<- podTask

	// Set before run starts.
	adopt map[string][]adoptedContainer // by pod UID
	prior *store.PodStatus

	exits   chan taskExit
	probes  chan probeResult
	hooks   chan hookResult
	waiters sync.WaitGroup // exit watchers, probes, hooks and kills

	// Owned by run.
	cur     *podRun     // the pod instance being run
	orphans []*podRun   // adopted instances of other UIDs, to tear down
	reaps   []*instance // exited tasks to delete after the next step
}

// podRun is one pod instance (one UID) on this node.
type podRun struct {
	uid       types.UID
	pod       *corev1.Pod // nil for an orphan found at start-up
	grace     time.Duration
	sandbox   string // netns and CNI attachment name
	netns     string // path
	podIP     string
	startTime time.Time
	message   string
	rejected  string // the admission failure's reason: the run fails for good (reserved.go)
	recs      map[string]*containerRecord
	insts     map[string]*instance
	published *corev1.PodStatus
	failed    bool      // the last status write failed
	took      time.Time // when this agent took the pod (zero: adopted, or its start counted; metrics.go)
}

// instance is the live containerd state of one container.
type instance struct {
	ctr  client.Container
	task client.Task // nil once the task is deleted
	// ctx lives as long as the instance is watched; cancel ends it, which
	// stops the exit waiter, the probes and a kill in progress.
	ctx       context.Context
	cancel    func()
	stopProbe [numProbeKinds]context.CancelFunc
	// exited is how an adopted container's task ended, from its labels
	// (nil: unknown, or it has not exited).
	exited *taskExit
	// reap, when set, starts the deletion of the exited task (handleExit
	// queues it; the worker starts it after its next step); reaped is
	// closed once the task has been deleted. See waitReaped.
	reap   func()
	reaped chan struct{}
}

// waitReaped makes sure the instance's exited task has been deleted, so
// that the container itself can go. Only the worker's goroutine may call
// it while a reap may be queued.
func (inst *instance) waitReaped() {
	if inst.reap != nil {
		start := inst.reap
		inst.reap = nil
		start()
	}
	if inst.reaped != nil {
		<-inst.reaped
	}
}

// startReaps starts the task deletions handleExit queued.
func (w *podWorker) startReaps() {
	for _, inst := range w.reaps {
		if inst.reap != nil {
			start := inst.reap
			inst.reap = nil
			start()
		}
	}
	w.reaps = nil
}

// taskExit reports that a container's task exited.
type taskExit struct {
	name, id string
	code     uint32
	at       time.Time
	err      error
}

func newPodWorker(a *Agent, key string, done chan<- podTask) *podWorker {
	ns, name, _ := strings.Cut(key, "/")
	return &podWorker{
		a: a, key: key, namespace: ns, name: name, done: done,
		log:    a.log.With("pod", key),
		kick:   make(chan struct{}, 1),
		exits:  make(chan taskExit),
		probes: make(chan probeResult),
		hooks:  make(chan hookResult),
	}
}

func (w *podWorker) podKey() string { return w.key }

func (w *podWorker) adoptPrevious(byUID map[string][]adoptedContainer, prior *store.PodStatus) {
	w.adopt, w.prior = byUID, prior
	w.holdAdoptedHostPorts(sortedKeys(byUID)) // hostnet.go
}

func (w *podWorker) launch(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(ctx)
	}()
}

// set hands the worker the pod as bound now (nil: not bound here any more).
func (w *podWorker) set(p *corev1.Pod) {
	w.mu.Lock()
	w.desired = p
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *podWorker) whenClean(ch chan<- podTask) {
	w.mu.Lock()
	w.cleanAck = ch
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// ackClean answers whenClean once the worker runs nothing but its desired
// pod: no orphan, and no current run of another UID (or of a pod gone).
// Only the worker's goroutine calls it, after a step.
func (w *podWorker) ackClean() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cleanAck == nil || len(w.orphans) > 0 {
		return
	}
	if w.cur != nil && (w.desired == nil || w.desired.UID != w.cur.uid) {
		return
	}
	w.cleanAck <- w // room was made for it
	w.cleanAck = nil
}

func (w *podWorker) latest() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired
}

// run is the worker's loop. It returns when ctx ends (leaving containers
// running) or after tearing down a pod that is gone.
func (w *podWorker) run(ctx context.Context) {
	defer w.waiters.Wait()
	w.adoptAll(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wake := w.step(ctx)
		if w.cur == nil && len(w.orphans) == 0 && w.latest() == nil {
			// Ending: done answers a fence's whenClean too.
			select {
			case w.done <- w:
			case <-ctx.Done():
			}
			return
		}
		w.ackClean()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wake)
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case ev := <-w.exits:
			w.handleExit(ctx, ev)
		case res := <-w.probes:
			w.handleProbe(ctx, res)
		case res := <-w.hooks:
			w.handleHook(ctx, res)
		case <-timer.C:
		}
	}
}

// step converges once and returns how long to sleep at most.
func (w *podWorker) step(ctx context.Context) time.Duration {
	defer w.startReaps()
	retry := w.a.cfg.ResyncInterval
	desired := w.latest()
	// Tear down what must go: orphans, and the current run if its pod is
	// gone or was replaced (a new UID).
	for len(w.orphans) > 0 {
		if err := w.teardown(ctx, w.orphans[0], desired == nil); err != nil {
			w.log.Warn("tear down orphaned pod", "uid", w.orphans[0].uid, "err", err)
			return time.Second
		}
		w.orphans = w.orphans[1:]
	}
	if w.cur != nil && (desired == nil || desired.UID != w.cur.uid) {
		if err := w.teardown(ctx, w.cur, desired == nil); err != nil {
			w.log.Warn("tear down pod", "uid", w.cur.uid, "err", err)
			return time.Second
		}
		w.cur = nil
	}
	if desired == nil || ctx.Err() != nil {
		return retry
	}
	if w.cur == nil {
		w.cur = &podRun{uid: desired.UID, recs: map[string]*containerRecord{}, insts: map[string]*instance{}, took: time.Now()}
		w.log.Info("pod bound", "uid", desired.UID)
	}
	r := w.cur
	r.pod = desired
	r.grace = gracePeriod(desired)

	now := time.Now()
	next := now.Add(retry)
	if r.podIP == "" && r.rejected == "" {
		if e := w.admit(&desired.Spec); e != nil { // reserved.go
			w.reject(r, e)
		}
	}
	if r.rejected != "" {
		w.publish(ctx, r, now)
		if r.failed {
			return time.Second
		}
		return retry
	}
	if r.podIP == "" {
		if err := w.setupSandbox(ctx, r); err != nil {
			if r.message != err.Error() {
				w.log.Warn("pod sandbox", "err", err)
			}
			r.message = err.Error()
			w.publish(ctx, r, now)
			return time.Second
		}
		r.message = ""
	}
	if r.startTime.IsZero() {
		r.startTime = now
	}
	// Start what the pod's sequence says is due, one container at a time,
	// planning again after each: a sidecar that counts as started at once
	// lets the next init container start in the same step.
	if plan := planPod(&desired.Spec, r.recs); plan.StopNext != "" {
		w.stopForGood(r, plan.StopNext)
	}
	tried := map[string]bool{}
	for {
		name := ""
		for _, n := range planPod(&desired.Spec, r.recs).Start {
			if !tried[n] {
				name = n
				break
			}
		}
		if name == "" {
			break
		}
		tried[name] = true
		_, c := roleOf(&desired.Spec, name)
		rec := r.recs[name]
		if rec == nil {
			rec = &containerRecord{Name: name}
			r.recs[name] = rec
		}
		if now.Before(rec.NextStart) {
			if rec.NextStart.Before(next) {
				next = rec.NextStart
			}
			continue
		}
		prev := rec.Waiting
		if err := w.start(ctx, r, c, rec); err != nil {
			if ctx.Err() != nil {
				return retry
			}
			if prev == nil || rec.Waiting == nil || prev.Message != rec.Waiting.Message {
				w.log.Warn("start container", "container", c.Name, "err", err)
			}
			if rec.NextStart.Before(next) {
				next = rec.NextStart
			}
		}
	}
	w.publish(ctx, r, time.Now())
	if r.failed {
		return time.Second
	}
	return time.Until(next)
}

// setupSandbox creates the pod's volumes and network namespace, attaches
// it to the bridge and writes its hosts and resolv.conf. A failed attempt
// is retried whole.
func (w *podWorker) setupSandbox(ctx context.Context, r *podRun) error {
	if r.sandbox == "" {
		r.sandbox = sandboxName(w.namespace, w.name, string(r.uid))
	}
	start := time.Now()
	if err := w.setupVolumes(ctx, r); err != nil {
		return err
	}
	volumesTook := time.Since(start)
	if err := w.recordSandbox(r); err != nil { // leftovers.go
		return err
	}
	netns, ip, err := w.podNetwork(ctx, r)
	if err != nil {
		return err
	}
	r.netns, r.podIP = netns, ip
	if err := w.writePodFiles(r); err != nil {
		return err
	}
	w.log.Info("pod network ready", "ip", ip, "netns", netns, "took", time.Since(start), "volumes", len(r.pod.Spec.Volumes), "volumesTook", volumesTook)
	return nil
}

func (w *podWorker) podDir(uid types.UID) string {
	return filepath.Join(w.a.cfg.StateDir, "pods", string(uid))
}

func (w *podWorker) writePodFiles(r *podRun) error {
	dir := w.podDir(r.uid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod dir: %w", err)
	}
	spec := r.pod.Spec // the policy the node carries out (hostnet.go)
	spec.DNSPolicy = dnsPolicyOf(&r.pod.Spec)
	var host dnsSettings
	if spec.DNSPolicy == corev1.DNSDefault {
		b, err := os.ReadFile(w.a.cfg.ResolvConf)
		if err != nil {
			return fmt.Errorf("dnsPolicy Default: the node's resolv.conf: %w", err)
		}
		host = parseResolvConf(string(b))
	}
	dns := podDNS(&spec, w.namespace, clusterDNS{Server: w.a.cfg.DNSServer, Domain: w.a.cfg.ClusterDomain}, host)
	files := map[string]string{
		"hosts":       hostsFile(podHostname(r.pod), podHostDomain(&r.pod.Spec, w.namespace, w.a.cfg.ClusterDomain), r.podIP, r.pod.Spec.HostAliases),
		"resolv.conf": dns.resolvConf(),
	}
	if spec.HostNetwork {
		b, err := os.ReadFile(w.a.cfg.HostsFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("hostNetwork: the node's hosts file: %w", err)
		}
		files["hosts"] = hostNetworkHostsFile(string(b), spec.HostAliases)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
	}
	return nil
}

// start runs one instance of container c. On failure it records why in rec
// (waiting reason) and when to try again.
func (w *podWorker) start(ctx context.Context, r *podRun, c *corev1.Container, rec *containerRecord) (err error) {
	now := time.Now()
	defer func() {
		if err == nil {
			rec.StartFailures = 0 // a crash loop's backoff (rec.Backoff) goes on
			return
		}
		reason := ReasonCreateError
		switch {
		case errors.Is(err, errNeverPull):
			reason = ReasonErrImageNeverPull
		case errors.Is(err, errPull):
			reason = ReasonErrImagePull
			if rec.Waiting != nil && (rec.Waiting.Reason == ReasonErrImagePull || rec.Waiting.Reason == ReasonImagePullBackOff) {
				reason = ReasonImagePullBackOff
			}
		case errors.Is(err, errConfig):
			reason = ReasonCreateConfigError
		}
		rec.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		w.a.m.startFailed(reason)
		w.startFailed(c.Name, reason, err)
		rec.StartFailures++
		rec.NextStart = now.Add(backoffDelay(rec.StartFailures, w.a.cfg.RestartBackoff, w.a.cfg.MaxRestartBackoff))
	}()

	img, err := w.a.ensureImage(ctx, c, podRef(w.namespace, w.name))
	if err != nil {
		return err
	}
	restarts := rec.RestartCount
	if rec.Last != nil || rec.ID != "" {
		restarts++ // a previous instance ran
	}
	contents, err := w.containerContents(ctx, r, c)
	if err != nil {
		return err
	}
	// Remove the previous instance, keeping its log as <container>.log.1.
	if inst := r.insts[c.Name]; inst != nil {
		if inst.cancel != nil { // nil: adopted after it had exited
			inst.cancel()
		}
		inst.waitReaped()
		if err := w.a.deleteContainer(ctx, inst.ctr); err != nil {
			return err
		}
		delete(r.insts, c.Name)
	}
	logPath := LogPath(w.a.cfg.StateDir, w.namespace, w.name, c.Name, false)
	if rec.Last != nil || rec.ID != "" {
		if err := os.Rename(logPath, logPath+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	id := containerID(w.namespace, w.name, string(r.uid), c.Name, restarts)
	dir := w.podDir(r.uid)
	began := time.Now()
	ctr, task, err := w.a.createContainer(ctx, c, img, containerPlan{
		ID: id,
		Labels: map[string]string{
			LabelPodNamespace: w.namespace,
			LabelPodName:      w.name,
			LabelPodUID:       string(r.uid),
			LabelContainer:    c.Name,
			LabelSandbox:      r.sandbox,
			LabelNetns:        r.netns,
			LabelPodIP:        r.podIP,
			LabelRestartCount: strconv.Itoa(int(restarts)),
			LabelGracePeriod:  strconv.Itoa(int(r.grace / time.Second)),
		},
		Env:       contents.Env,
		Mounts:    contents.Mounts,
		Security:  contents.Security,
		Hostname:  podHostname(r.pod),
		NetnsPath: r.netns,
		HostsPath: filepath.Join(dir, "hosts"),
		Resolv:    filepath.Join(dir, "resolv.conf"),
		LogPath:   logPath,
	})
	if err != nil {
		return err
	}
	w.containerCreated(c.Name)
	inst := &instance{ctr: ctr, task: task}
	if err := w.watch(ctx, c.Name, inst); err != nil {
		w.a.deleteContainer(ctx, ctr)
		return err
	}
	if err := task.Start(ctx); err != nil {
		inst.cancel()
		w.a.deleteContainer(ctx, ctr)
		return fmt.Errorf("start %s: %w", id, err)
	}
	r.insts[c.Name] = inst
	startedAt := time.Now()
	w.log.Info("container started", "container", c.Name, "id", id, "restarts", restarts,
		"createStart", startedAt.Sub(began).Round(time.Millisecond))
	w.a.m.containerStarted(restarts > rec.RestartCount)
	w.containerStarted(c.Name)
	rec.ID = id
	rec.ImageID = img.Target().Digest.String()
	rec.Running = true
	rec.StartedAt = startedAt
	rec.Waiting = nil
	rec.RestartCount = restarts
	rec.KillReason, rec.KillMessage = "", ""
	rec.Probes = newContainerProbes(c)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		// Probes start once the hook has returned (handleHook).
		rec.PostStartPending = true
		w.runPostStart(r, c, rec, inst)
		return nil
	}
	w.startProbes(r, c, rec, inst)
	return nil
}

// watch starts the goroutine that reports inst's exit on w.exits.
func (w *podWorker) watch(ctx context.Context, name string, inst *instance) error {
	wctx, cancel := context.WithCancel(ctx)
	statusC, err := inst.task.Wait(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("wait %s: %w", inst.ctr.ID(), err)
	}
	inst.ctx, inst.cancel = wctx, cancel
	id := inst.ctr.ID()
	task := inst.task
	w.waiters.Add(1)
	go func() {
		defer w.waiters.Done()
		for {
			select {
			case st := <-statusC:
				if st.Error() != nil && wctx.Err() == nil {
					// The wait broke, not the task: containerd went away
					// (a restart). Its shims, and the task, live on: wait
					// again once containerd is back.
					var ev *taskExit
					statusC, ev = w.rewait(wctx, name, task)
					if ev == nil {
						continue
					}
					select {
					case w.exits <- *ev:
					case <-wctx.Done():
					}
					return
				}
				ev := taskExit{name: name, id: id, code: st.ExitCode(), at: st.ExitTime(), err: st.Error()}
				select {
				case w.exits <- ev:
				case <-wctx.Done():
				}
			case <-wctx.Done():
			}
			return
		}
	}()
	return nil
}

// rewait waits on task again after its wait broke (containerd restarted),
// retrying every half second until containerd answers or ctx ends. It
// returns the new wait, or, when the task is gone, its exit (unknown:
// code 255).
func (w *podWorker) rewait(ctx context.Context, name string, task client.Task) (<-chan client.ExitStatus, *taskExit) {
	w.log.Warn("wait on container broke (containerd restarted?); waiting on it again", "container", name)
	for {
		statusC, err := task.Wait(ctx)
		if err == nil {
			w.log.Info("waiting on container again", "container", name)
			return statusC, nil
		}
		if errdefs.IsNotFound(err) {
			return nil, &taskExit{name: name, id: task.ID(), code: 255, at: time.Now()}
		}
		if ctx.Err() != nil {
			return nil, nil // the select on ctx ends the watch
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// handleExit records a container's exit and plans its restart.
func (w *podWorker) handleExit(ctx context.Context, ev taskExit) {
	r := w.cur
	if r == nil {
		return
	}
	rec, inst := r.recs[ev.name], r.insts[ev.name]
	if rec == nil || rec.ID != ev.id || inst == nil {
		return // a stale report
	}
	if ev.err != nil && ctx.Err() != nil {
		return // the wait was cut by shutdown, not by an exit
	}
	if ev.err != nil {
		w.log.Warn("wait for container", "container", ev.name, "err", ev.err)
	}
	at := ev.at
	if at.IsZero() || at.Before(rec.StartedAt) {
		at = time.Now()
	}
	// Label the container with how its task ended, then reap the task
	// (and its shim), in the background and only once the next step has
	// started what follows (the next container in sequence, a restart):
	// deleting a task takes tens of milliseconds and competes with
	// creating the next one. The label comes first, so that a restarted
	// agent learns the exit from the task or, once the task is gone, from
	// the label (a completed init container is not run again). The
	// container stays until restart or pod deletion, which wait for this
	// (waitReaped).
	reaped := make(chan struct{})
	task, ctr := inst.task, inst.ctr
	inst.task = nil
	code := int32(ev.code)
	inst.reaped = reaped
	inst.reap = func() {
		w.waiters.Add(1)
		go func() {
			defer w.waiters.Done()
			defer close(reaped)
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, err := ctr.SetLabels(dctx, exitLabels(code, at)); err != nil && !errdefs.IsNotFound(err) {
				w.log.Warn("label exited container", "container", ev.name, "err", err)
			}
			if task == nil {
				return
			}
			if _, err := task.Delete(dctx); err != nil && !errdefs.IsNotFound(err) {
				w.log.Warn("delete task", "container", ev.name, "err", err)
			}
		}()
	}
	w.reaps = append(w.reaps, inst)
	inst.cancel()
	w.recordExit(r, rec, int32(ev.code), at)
}

// Labels a container gets when its task exits.
const (
	LabelExitCode   = "bosun.dev/exit-code"
	LabelFinishedAt = "bosun.dev/finished-at"
)

func exitLabels(code int32, at time.Time) map[string]string {
	return map[string]string{LabelExitCode: strconv.Itoa(int(code)), LabelFinishedAt: at.UTC().Format(time.RFC3339Nano)}
}

// exitFromLabels reads what exitLabels wrote (ok false when absent).
func exitFromLabels(l map[string]string) (code int32, at time.Time, ok bool) {
	c, err := strconv.Atoi(l[LabelExitCode])
	if err != nil {
		return 0, time.Time{}, false
	}
	at, _ = time.Parse(time.RFC3339Nano, l[LabelFinishedAt])
	return int32(c), at, true
}

func (w *podWorker) recordExit(r *podRun, rec *containerRecord, code int32, at time.Time) {
	term := terminatedState(rec, code, at)
	term.Message = w.terminationMessage(r, rec.Name, code)
	policyCode := code
	if rec.KillReason != "" {
		// Killed by a failing probe or postStart hook: a failure,
		// whatever the process answered to SIGTERM (kubelet restarts it
		// unless Never).
		term.Reason, term.Message = rec.KillReason, rec.KillMessage
		if policyCode == 0 {
			policyCode = 1
		}
	}
	policy := restartPolicyFor(&r.pod.Spec, rec.Name)
	if rec.Stopping || planPod(&r.pod.Spec, r.recs).Done {
		// A sidecar stopped (or ending by itself) once the pod is done.
		policy = corev1.RestartPolicyNever
	}
	plan := planExit(policy, policyCode, at.Sub(rec.StartedAt), rec.Backoff, w.a.cfg.RestartBackoff, w.a.cfg.MaxRestartBackoff)
	rec.Running = false
	rec.PostStartPending, rec.Stopping = false, false
	rec.KillReason, rec.KillMessage = "", ""
	rec.Backoff = plan.Backoff
	w.log.Info("container exited", "container", rec.Name, "exitCode", code, "reason", term.Reason, "restart", plan.Restart, "backoff", plan.Delay)
	if !plan.Restart {
		rec.Terminated = term
		return
	}
	rec.Last = term
	rec.NextStart = at.Add(plan.Delay)
	rec.Waiting = nil
	if plan.Delay > 0 {
		w.backOff(rec.Name, plan.Delay)
		rec.Waiting = &corev1.ContainerStateWaiting{
			Reason:  ReasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", plan.Delay, rec.Name, w.key),
		}
	}
}

// publish writes the pod's status when it differs from the last written.
func (w *podWorker) publish(ctx context.Context, r *podRun, now time.Time) {
	st := buildStatus(statusInput{
		Pod: r.pod, Records: r.recs, PodIP: r.podIP, HostIP: w.a.cfg.NodeIP,
		StartTime: r.startTime, Message: r.message, Reason: r.rejected, Prev: r.published, Now: now,
	})
	if statusEqual(&st, r.published) {
		return
	}
	ps := store.PodStatus{UID: r.uid, Node: w.a.cfg.NodeName, Status: st}
	if r.pod != nil {
		ps.Owner = kube.OwnerOf(r.pod)
	}
	err := w.a.st.PutPodStatus(ctx, w.namespace, w.name, ps)
	if err != nil {
		r.failed = true
		if ctx.Err() == nil {
			w.log.Warn("write pod status", "err", err)
		}
		return
	}
	r.failed = false
	r.published = &st
	w.a.m.podPublished(r, &st, now)
	w.log.Debug("pod status", "phase", st.Phase, "ip", st.PodIP)
}

// teardown stops every container of the run (SIGTERM, grace, SIGKILL),
// deletes them, releases the network and the pod's files, and, when the
// pod is gone from the store, its status.
func (w *podWorker) teardown(ctx context.Context, r *podRun, deleteStatus bool) error {
	start := time.Now()
	w.stopping(r)
	if err := w.stopAll(ctx, r); err != nil {
		return err
	}
	if r.sandbox != "" {
		if err := w.a.net.teardown(ctx, r.sandbox, r.netns); err != nil {
			return err
		}
	}
	if err := removeTree(w.podDir(r.uid)); err != nil {
		return fmt.Errorf("remove pod dir: %w", err)
	}
	w.a.vols.release(r.uid) // its mounts of claims' volumes are gone (claims.go)
	w.releaseHostPorts(r)   // hostnet.go
	if deleteStatus {
		if err := os.RemoveAll(filepath.Dir(LogPath(w.a.cfg.StateDir, w.namespace, w.name, "x", false))); err != nil {
			return fmt.Errorf("remove logs: %w", err)
		}
		if err := w.deleteStatus(ctx, r.uid); err != nil {
			return err
		}
	}
	w.log.Info("pod torn down", "uid", r.uid, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// adoptAll turns the containers found at start-up into runs: the instance
// whose UID matches the bound pod becomes the current run, others become
// orphans to tear down.
func (w *podWorker) adoptAll(ctx context.Context) {
	desired := w.latest()
	for _, uid := range sortedKeys(w.adopt) {
		r := w.adoptRun(ctx, types.UID(uid), w.adopt[uid])
		if desired != nil && desired.UID == r.uid && w.cur == nil {
			if err := w.hostNetworkAllowed(&desired.Spec); err != nil {
				w.log.Warn("adopted pod is not allowed on this node any more; stopping it", "uid", r.uid, "err", err)
				w.orphans = append(w.orphans, r)
				continue
			}
			if e := w.admit(&desired.Spec); e != nil { // reserved.go
				// As kubelet admits again at start: bosun's listener is
				// there now, so the pod may not keep the port.
				w.log.Warn("adopted pod holds a port bosun listens on at this node; stopping it", "uid", r.uid, "err", e.Message)
				w.orphans = append(w.orphans, r)
				continue
			}
			if isNetns(r.netns) || w.adoptedOnHostNetwork(r, desired) {
				w.cur = r
				w.resume(ctx, r, desired)
				continue
			}
			w.log.Warn("network namespace of adopted pod is gone; recreating the pod", "netns", r.netns)
		}
		w.orphans = append(w.orphans, r)
	}
	w.adopt = nil
}

// adoptRun rebuilds a run from labels of the containers found for one UID.
func (w *podWorker) adoptRun(ctx context.Context, uid types.UID, found []adoptedContainer) *podRun {
	r := &podRun{uid: uid, recs: map[string]*containerRecord{}, insts: map[string]*instance{}, grace: 30 * time.Second}
	// Newest instance per container name first.
	sort.Slice(found, func(i, j int) bool { return found[i].restart > found[j].restart })
	for _, f := range found {
		name := f.labels[LabelContainer]
		r.sandbox, r.netns, r.podIP = f.labels[LabelSandbox], f.labels[LabelNetns], f.labels[LabelPodIP]
		if g, err := strconv.Atoi(f.labels[LabelGracePeriod]); err == nil && g >= 0 {
			r.grace = time.Duration(g) * time.Second
		}
		if r.insts[name] != nil {
			// An older instance left behind: it goes now.
			if err := w.a.deleteContainer(ctx, f.ctr); err != nil {
				w.log.Warn("delete stale container", "id", f.ctr.ID(), "err", err)
			}
			continue
		}
		inst := &instance{ctr: f.ctr}
		if code, at, ok := exitFromLabels(f.labels); ok {
			inst.exited = &taskExit{name: name, id: f.ctr.ID(), code: uint32(code), at: at}
		}
		r.insts[name] = inst
		r.recs[name] = &containerRecord{Name: name, ID: f.ctr.ID(), RestartCount: f.restart, StartedAt: f.createdAt}
	}
	return r
}

// resume picks up an adopted run of the bound pod: running tasks are
// watched again, exited ones are handled as exits.
func (w *podWorker) resume(ctx context.Context, r *podRun, pod *corev1.Pod) {
	r.pod = pod
	r.grace = gracePeriod(pod)
	var prior map[string]corev1.ContainerStatus
	if w.prior != nil && w.prior.UID == r.uid {
		if w.prior.Status.StartTime != nil {
			r.startTime = w.prior.Status.StartTime.Time
		}
		prior = map[string]corev1.ContainerStatus{}
		for _, cs := range w.prior.Status.InitContainerStatuses {
			prior[cs.Name] = cs
		}
		for _, cs := range w.prior.Status.ContainerStatuses {
			prior[cs.Name] = cs
		}
	}
	// Sidecars last: whether an exited sidecar restarts depends on whether
	// the app containers are done.
	names := sortedKeys(r.insts)
	sort.SliceStable(names, func(i, j int) bool {
		ri, _ := roleOf(&pod.Spec, names[i])
		rj, _ := roleOf(&pod.Spec, names[j])
		return ri != roleSidecar && rj == roleSidecar
	})
	for _, name := range names {
		inst, rec := r.insts[name], r.recs[name]
		if cs, ok := prior[name]; ok && cs.ContainerID == "containerd://"+rec.ID {
			rec.ImageID = cs.ImageID
			rec.Last = cs.LastTerminationState.Terminated
			if cs.State.Running != nil {
				rec.StartedAt = cs.State.Running.StartedAt.Time
			}
			if cs.State.Terminated != nil {
				rec.StartedAt = cs.State.Terminated.StartedAt.Time
			}
		}
		task, err := inst.ctr.Task(ctx, nil)
		if err != nil {
			// Created but never started, or its task was reaped: it
			// counts as exited, as its labels (or the last status
			// written) say, else as failed.
			code, at := int32(255), time.Now()
			cs, known := prior[name]
			switch {
			case inst.exited != nil:
				code = int32(inst.exited.code)
				if !inst.exited.at.IsZero() {
					at = inst.exited.at
				}
			case known && cs.ContainerID == "containerd://"+rec.ID && cs.State.Terminated != nil:
				code, at = cs.State.Terminated.ExitCode, cs.State.Terminated.FinishedAt.Time
			}
			w.recordExit(r, rec, code, at)
			continue
		}
		st, err := task.Status(ctx)
		if err != nil {
			w.log.Warn("adopt: task status", "container", name, "err", err)
			w.recordExit(r, rec, 255, time.Now())
			continue
		}
		inst.task = task
		if st.Status == client.Stopped {
			if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
				w.log.Warn("adopt: delete exited task", "container", name, "err", err)
			}
			inst.task = nil
			at := st.ExitTime
			if at.IsZero() {
				at = time.Now()
			}
			w.recordExit(r, rec, int32(st.ExitStatus), at)
			continue
		}
		if err := w.watch(ctx, name, inst); err != nil {
			w.log.Warn("adopt: watch", "container", name, "err", err)
			continue
		}
		rec.Running = true
		if c := specOf(pod, name); c != nil {
			rec.Probes = newContainerProbes(c)
			if cs, ok := prior[name]; ok && cs.ContainerID == "containerd://"+rec.ID {
				rec.Probes.resumeFrom(cs.Started != nil && *cs.Started, cs.Ready)
			}
			w.startProbes(r, c, rec, inst)
		}
	}
	w.log.Info("adopted pod", "uid", r.uid, "containers", len(r.insts), "ip", r.podIP)
}

// terminatedState describes the end of rec's current run.
func terminatedState(rec *containerRecord, code int32, at time.Time) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: exitReason(code), ContainerID: "containerd://" + rec.ID,
	}
	t.StartedAt.Time = rec.StartedAt
	t.FinishedAt.Time = at
	return t
}

// deleteStatus removes the pod's status key if it still describes uid.
func (w *podWorker) deleteStatus(ctx context.Context, uid types.UID) error {
	return w.a.st.DeletePodStatus(ctx, w.a.cfg.NodeName, w.namespace, w.name, uid)
}
