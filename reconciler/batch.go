package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bosun/canary"
)

// The actions of Jobs and CronJobs.
const (
	PutJob     ActionType = "PutJob"
	DeleteJob  ActionType = "DeleteJob"
	PutCronJob ActionType = "PutCronJob"
	// DeleteCronJob deletes a CronJob; its Jobs are deleted by their own
	// actions.
	DeleteCronJob ActionType = "DeleteCronJob"
)

// Result is everything one plan decides.
type Result struct {
	// Actions are the writes, in the order Plan gives them.
	Actions []Action
	// Rollouts summarise each desired Deployment's rollout as the plan
	// leaves it, in the order of the desired Set (namespace, name).
	Rollouts []RolloutSummary
	// Wake is the earliest time after now at which planning again, with
	// nothing else changed, decides something new: a pod becoming available
	// (minReadySeconds), a rollout missing its progress deadline, a CronJob's
	// next run, a Job's deadline, the end of a pod backoff or of a ttl, a
	// NoExecute eviction, the end of an absent node's grace. Zero when
	// nothing is pending. The driver's caller sets a timer on it, and need
	// not plan otherwise until something changes.
	Wake time.Time
	// Events are what happened to Jobs and CronJobs, for logs and metrics;
	// each is reported by the plan whose actions record it, so it is
	// reported again only if those actions were not applied.
	Events []Event
	// Canaries summarise each Deployment's canary as the plan leaves it
	// (Deployments with a canary annotation or a stored canary), in the
	// order of the desired Set; CanaryEvents are what happened to them, for
	// the history, reported like Events.
	Canaries     []CanarySummary
	CanaryEvents []canary.Event
}

// Event is a notable change of a Job or CronJob, named by its Kubernetes
// event reason where Kubernetes has one.
type Event struct {
	Kind, Namespace, Name string
	Reason                string
	Message               string
	// Count is how many scheduled runs a CronJob event is about: skipped
	// ones for MissSchedule, MissedRuns and JobAlreadyActive; 1 otherwise.
	Count int
	// Scheduled is the scheduled time of the run a CronJob event is about.
	Scheduled time.Time
}

// jobRun is one Job through a plan: as stored, as it will be stored, and
// its pods.
type jobRun struct {
	key    string
	stored *batchv1.Job // nil for a new Job
	job    *batchv1.Job // as it will be stored
	reason string       // why it is written, when new or rerun
	pods   []podRef     // pods of the current run
	stale  []podRef     // pods of earlier runs of the same name
	// record is an expired Job from Git: nothing runs.
	record bool
	// cron is the key of the CronJob that owns it, "" for a Job from Git;
	// scheduled its scheduled time; viaCron is set for a run started by
	// this plan, which its CronJob's PutCronJob carries.
	cron      string
	scheduled time.Time
	viaCron   bool

	stepped bool
	step    jobStepResult
	lost    []lostPod
	expire  bool
	deleted bool
	why     string // why it is deleted
}

// lostPod is a pod of a Job's run that stops before it finished: its node
// was lost, or a NoExecute taint evicts it. It counts as failed.
type lostPod struct {
	ref podRef
	why string
}

// batchPlan carries the Jobs and CronJobs of one plan.
type batchPlan struct {
	p          *planner
	storedJobs map[string]*batchv1.Job
	storedCron map[string]*batchv1.CronJob
	runs       map[string]*jobRun
	byCron     map[string][]*jobRun
	names      map[string]bool // every observed pod's key, built when needed
}

// batch plans Jobs and CronJobs, as Kubernetes' job and cronjob controllers
// do (job.go, cronjob.go): Jobs from Git run once per spec; CronJobs start
// Jobs when their schedule is due; Jobs that neither Git nor a CronJob of
// Git owns are pruned with their pods; finished pods stay until their Job
// goes. Puts come before pod actions, deletes after them.
func (p *planner) batch(desiredJobs []batchv1.Job, desiredCron []batchv1.CronJob) {
	b := &batchPlan{p: p, storedJobs: map[string]*batchv1.Job{}, storedCron: map[string]*batchv1.CronJob{},
		runs: map[string]*jobRun{}, byCron: map[string][]*jobRun{}}
	for i := range p.observed.Jobs {
		j := &p.observed.Jobs[i]
		b.storedJobs[key(j.Namespace, j.Name)] = j
	}
	for i := range p.observed.CronJobs {
		cj := &p.observed.CronJobs[i]
		b.storedCron[key(cj.Namespace, cj.Name)] = cj
	}
	wantCron := make(map[string]bool, len(desiredCron))
	for i := range desiredCron {
		wantCron[key(desiredCron[i].Namespace, desiredCron[i].Name)] = true
	}

	for i := range desiredJobs {
		r := b.gitJob(&desiredJobs[i])
		b.runs[r.key] = r
	}
	for _, k := range slices.Sorted(maps.Keys(b.storedJobs)) {
		if b.runs[k] != nil {
			continue
		}
		j := b.storedJobs[k]
		r := &jobRun{key: k, stored: j, job: j.DeepCopy()}
		b.runs[k] = r
		owner := metav1.GetControllerOfNoCopy(j)
		switch {
		case owner == nil:
			r.deleted, r.why = true, "pruned: removed from Git"
		case owner.Kind != "CronJob" || !wantCron[key(j.Namespace, owner.Name)]:
			r.deleted, r.why = true, "pruned: "+owner.Kind+" "+key(j.Namespace, owner.Name)+" removed from Git"
		default:
			r.cron = key(j.Namespace, owner.Name)
			r.scheduled = scheduledTime(j)
			b.byCron[r.cron] = append(b.byCron[r.cron], r)
		}
		b.podsOf(r)
	}
	for _, k := range slices.Sorted(maps.Keys(p.byJob)) {
		if b.runs[k] == nil {
			for _, ref := range p.byJob[k] {
				p.deletePod(ref, "pruned: job "+k+" does not exist")
			}
		}
	}

	for _, k := range slices.Sorted(maps.Keys(b.runs)) {
		if r := b.runs[k]; !r.deleted && !r.record {
			b.stepRun(r)
		}
	}
	var cronPuts []Action
	for i := range desiredCron {
		if a := b.cronJob(&desiredCron[i]); a != nil {
			cronPuts = append(cronPuts, *a)
		}
	}
	var jobPuts, jobDeletes []Action
	for _, k := range slices.Sorted(maps.Keys(b.runs)) {
		put, del := b.commit(b.runs[k])
		if put != nil {
			jobPuts = append(jobPuts, *put)
		}
		if del != nil {
			jobDeletes = append(jobDeletes, *del)
		}
	}
	var cronDeletes []Action
	for _, k := range slices.Sorted(maps.Keys(b.storedCron)) {
		if !wantCron[k] {
			cj := b.storedCron[k]
			cronDeletes = append(cronDeletes, Action{Type: DeleteCronJob, Namespace: cj.Namespace, Name: cj.Name, Reason: "pruned: removed from Git"})
		}
	}
	p.first = append(append(p.first, jobPuts...), cronPuts...)
	p.last = append(append(p.last, jobDeletes...), cronDeletes...)
}

// gitJob is a Job from Git as it will be stored: the stored run when its
// spec hash is the same, else a new run (a new UID; the old run's pods go).
func (b *batchPlan) gitJob(dj *batchv1.Job) *jobRun {
	p := b.p
	k := key(dj.Namespace, dj.Name)
	stored := b.storedJobs[k]
	hash := JobSpecHash(&dj.Spec)
	r := &jobRun{key: k, stored: stored}
	defer b.podsOf(r)
	if stored != nil && stored.Annotations[AnnotationSpecHash] == hash && stored.Annotations[AnnotationExpired] != "" {
		r.record, r.job = true, stored
		return r
	}
	out := dj.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
	ann := make(map[string]string, len(dj.Annotations)+2)
	for k, v := range dj.Annotations {
		ann[k] = v
	}
	ann[AnnotationSpecHash] = hash
	if stored == nil || stored.Annotations[AnnotationSpecHash] != hash {
		r.reason = "create"
		if stored != nil {
			r.reason = "spec changed in Git: runs again"
		}
		out.UID = objectUID("Job", dj.Namespace, dj.Name, hash, p.now)
		out.CreationTimestamp = stamp(p.now)
		out.Generation = 1
		out.Status = batchv1.JobStatus{}
	} else {
		keepStoreFields(&out.ObjectMeta, &stored.ObjectMeta)
		out.Generation = max(stored.Generation, 1)
		if !equality.Semantic.DeepEqual(out.Spec, stored.Spec) {
			out.Generation++
		}
		out.Status = *stored.Status.DeepCopy()
		if v, ok := stored.Annotations[AnnotationLostPods]; ok {
			ann[AnnotationLostPods] = v
		}
	}
	out.Annotations = ann
	r.job = out
	return r
}

// podsOf sorts the observed pods of r's name into its current run's and
// earlier runs'.
func (b *batchPlan) podsOf(r *jobRun) {
	for _, ref := range b.p.byJob[r.key] {
		if owner := metav1.GetControllerOfNoCopy(ref.pod); owner != nil && owner.UID == r.job.UID {
			r.pods = append(r.pods, ref)
		} else {
			r.stale = append(r.stale, ref)
		}
	}
}

// stepRun takes a Job one step (stepJob) and decides its expiry.
func (b *batchPlan) stepRun(r *jobRun) {
	p := b.p
	var pods jobPods
	pinned := r.job.Spec.Template.Spec.NodeName != ""
	for _, ref := range r.pods {
		pod := ref.pod
		switch {
		case pod.Status.Phase == corev1.PodSucceeded:
			pods.succeeded = append(pods.succeeded, pod)
		case pod.Status.Phase == corev1.PodFailed:
			pods.failed = append(pods.failed, pod)
		case p.lost(pod, pinned):
			pods.lost = append(pods.lost, pod)
			r.lost = append(r.lost, lostPod{ref, "node " + pod.Spec.NodeName + " lost: the pod counts as failed"})
		default:
			if why, evicted := p.evictedOrDrained(pod, pinned, true); evicted {
				pods.lost = append(pods.lost, pod)
				r.lost = append(r.lost, lostPod{ref, why + ": the pod counts as failed"})
				continue
			}
			pods.active = append(pods.active, pod)
		}
	}
	r.step = stepJob(jobStepInput{spec: &r.job.Spec, status: &r.job.Status, lostBefore: lostPods(r.job), pods: pods, now: p.now})
	r.stepped = true
	p.wakeAt(r.step.wake)
	if ttl := r.job.Spec.TTLSecondsAfterFinished; ttl != nil && JobFinished(&r.step.status) != nil {
		at := finishedAt(&r.step.status).Add(time.Duration(*ttl) * time.Second)
		if p.now.Before(at) {
			p.wakeAt(at)
		} else {
			r.expire = true
		}
	}
}

// commit turns a Job's decisions into actions: pod deletions and
// creations, and the Job's put or delete.
func (b *batchPlan) commit(r *jobRun) (put, del *Action) {
	p := b.p
	j := r.job
	if e := r.step.event; r.stepped && e != nil {
		e.Kind, e.Namespace, e.Name = "Job", j.Namespace, j.Name
		p.events = append(p.events, *e)
	}
	if r.deleted {
		for _, ref := range p.byJob[r.key] {
			p.deletePod(ref, "job "+r.key+" deleted: "+r.why)
		}
		if r.stored == nil {
			return nil, nil
		}
		return nil, &Action{Type: DeleteJob, Namespace: j.Namespace, Name: j.Name, Reason: r.why}
	}
	for _, ref := range r.stale {
		p.deletePod(ref, "pod of an earlier run of job "+r.key)
	}
	if r.record {
		for _, ref := range r.pods {
			p.deletePod(ref, "job "+r.key+" expired")
		}
		return nil, nil
	}
	if r.expire {
		for _, ref := range r.pods {
			p.deletePod(ref, "job "+r.key+": ttlSecondsAfterFinished passed")
		}
		const why = "ttlSecondsAfterFinished passed"
		if r.cron != "" || r.stored == nil {
			if r.stored == nil {
				return nil, nil
			}
			return nil, &Action{Type: DeleteJob, Namespace: j.Namespace, Name: j.Name, Reason: why}
		}
		rec := j.DeepCopy()
		rec.Status = r.step.status
		rec.Annotations[AnnotationExpired] = stamp(p.now).UTC().Format(time.RFC3339)
		rec.Spec.Template = corev1.PodTemplateSpec{}
		return &Action{Type: PutJob, Job: rec, Reason: why + ": pods deleted, kept as a record so that it does not run again"}, nil
	}

	byPod := make(map[*corev1.Pod]podRef, len(r.pods))
	for _, ref := range r.pods {
		byPod[ref.pod] = ref
	}
	for _, l := range r.lost {
		p.deletePod(l.ref, l.why)
	}
	for _, pod := range r.step.remove {
		p.deletePod(byPod[pod], r.step.removeWhy)
	}
	if len(r.lost) > 0 {
		j.Annotations = cloneMap(j.Annotations)
		j.Annotations[AnnotationLostPods] = strconv.Itoa(int(lostPods(j)) + len(r.lost))
	}
	if r.step.create > 0 {
		used := map[int]bool{}
		for _, ref := range r.pods {
			if n, ok := jobPodOrdinal(j, ref.pod.Name); ok {
				used[n] = true
			}
		}
		ordinal := 0
		for range r.step.create {
			for used[ordinal] || b.taken(j.Namespace, jobPodName(j, ordinal)) {
				ordinal++
			}
			used[ordinal] = true
			p.createPod(newJobPod(j, jobPodName(j, ordinal)), "",
				fmt.Sprintf("job %s: %d active, %d succeeded", r.key, r.step.status.Active, r.step.status.Succeeded))
		}
	}
	j.Status = r.step.status
	if r.viaCron {
		return nil, nil // its CronJob's put stores it
	}
	reason := r.reason
	if s := r.stored; reason == "" {
		switch {
		case !equality.Semantic.DeepEqual(j.Spec, s.Spec) || !equality.Semantic.DeepEqual(j.Labels, s.Labels) ||
			!sameExcept(j.Annotations, s.Annotations, AnnotationLostPods):
			reason = "changed in Git"
		case j.Generation != s.Generation || !equality.Semantic.DeepEqual(j.Status, s.Status) ||
			j.Annotations[AnnotationLostPods] != s.Annotations[AnnotationLostPods]:
			reason = jobSummary(j)
		default:
			return nil, nil
		}
	}
	return &Action{Type: PutJob, Job: j, Reason: reason}, nil
}

// taken reports whether a pod of that name exists, is being created, or
// is still stopping on its node.
func (b *batchPlan) taken(namespace, name string) bool {
	if b.names == nil {
		b.names = make(map[string]bool, len(b.p.all)+len(b.p.observed.Terminating))
		for _, ref := range b.p.all {
			b.names[ref.key] = true
		}
		for _, t := range b.p.observed.Terminating {
			b.names[key(t.Namespace, t.Name)] = true
		}
	}
	k := key(namespace, name)
	return b.names[k] || b.p.changes[k] != nil
}

func jobSummary(j *batchv1.Job) string {
	st := &j.Status
	s := fmt.Sprintf("status: %d active, %d succeeded, %d failed", st.Active, st.Succeeded, st.Failed)
	if c := JobFinished(st); c != nil {
		s += ", " + string(c.Type)
		if c.Reason != "" {
			s += " (" + c.Reason + ")"
		}
	}
	return s
}

// ---- CronJobs ----

// cronJob decides a CronJob from Git: whether a run is due (and starts it,
// skips it or replaces the running one), which finished Jobs the history
// limits remove, its status, and its next run. It returns its put, if
// anything changed; a started run rides in it, so that the Job and the
// lastScheduleTime that records it are written in one transaction.
func (b *batchPlan) cronJob(dcj *batchv1.CronJob) *Action {
	p := b.p
	k := key(dcj.Namespace, dcj.Name)
	stored := b.storedCron[k]
	out := dcj.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}
	var until time.Time
	var lastSkip string
	if stored != nil {
		keepStoreFields(&out.ObjectMeta, &stored.ObjectMeta)
		out.Generation = max(stored.Generation, 1)
		if !equality.Semantic.DeepEqual(out.Spec, stored.Spec) {
			out.Generation++
		}
		out.Status = *stored.Status.DeepCopy()
		until, _ = time.Parse(time.RFC3339, stored.Annotations[AnnotationScheduledUntil])
		lastSkip = stored.Annotations[AnnotationLastSkip]
	} else {
		out.UID = objectUID("CronJob", out.Namespace, out.Name, "", p.now)
		out.CreationTimestamp = stamp(p.now)
		out.Generation = 1
	}
	event := func(reason, msg string, count int, scheduled time.Time) {
		p.events = append(p.events, Event{Kind: "CronJob", Namespace: out.Namespace, Name: out.Name,
			Reason: reason, Message: msg, Count: count, Scheduled: scheduled})
	}

	var owned, active []*jobRun
	for _, r := range b.byCron[k] {
		if r.deleted {
			continue
		}
		owned = append(owned, r)
		if !r.record && !r.expire && JobFinished(b.statusOf(r)) == nil {
			active = append(active, r)
		}
	}
	slices.SortFunc(owned, byScheduled)
	var run *jobRun
	sched, err := parseSchedule(out.Spec.Schedule, out.Spec.TimeZone)
	suspended := out.Spec.Suspend != nil && *out.Spec.Suspend
	if err == nil && !suspended {
		var last time.Time
		if out.Status.LastScheduleTime != nil {
			last = out.Status.LastScheduleTime.Time
		}
		earliest := latestOf(out.CreationTimestamp.Time, last, until)
		due, missed := sched.due(earliest, p.now)
		if !due.IsZero() {
			name := cronJobName(out, due)
			late := p.now.Sub(due)
			at := due.In(sched.loc).Format(time.RFC3339)
			skip := func(reason, why string, count int) {
				until, lastSkip = due, at+": "+why
				event(reason, fmt.Sprintf("run scheduled at %s skipped: %s", at, why), count, due)
			}
			switch deadline := out.Spec.StartingDeadlineSeconds; {
			case b.runs[key(out.Namespace, name)] != nil && !b.runs[key(out.Namespace, name)].deleted:
				out.Status.LastScheduleTime = &metav1.Time{Time: due} // started before
			case deadline != nil && late > time.Duration(*deadline)*time.Second:
				why := fmt.Sprintf("missed its starting deadline (%s late, startingDeadlineSeconds %d)", late.Truncate(time.Second), *deadline)
				if missed > 0 {
					why += fmt.Sprintf(", with %d earlier missed runs", missed)
				}
				skip(ReasonMissedDeadline, why, missed+1)
			case out.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(active) > 0:
				skip(ReasonJobAlreadyActive, "job "+active[0].job.Name+" is still active (concurrencyPolicy Forbid)", 1)
				if missed > 0 {
					event(ReasonMissedRuns, fmt.Sprintf("%d runs before %s were missed", missed, at), missed, due)
				}
			default:
				if out.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent {
					for _, a := range active {
						a.deleted, a.why = true, "replaced by the run scheduled at "+at+" (concurrencyPolicy Replace)"
						event(ReasonJobReplaced, "deleted active job "+a.job.Name+": replaced by the run scheduled at "+at, 1, due)
					}
					active = nil
				}
				if missed > 0 {
					event(ReasonMissedRuns, fmt.Sprintf("%d runs before %s were missed; only the latest runs", missed, at), missed, due)
				}
				run = b.startRun(out, name, due, sched.loc)
				active = append(active, run)
				owned = append(owned, run)
				out.Status.LastScheduleTime = &metav1.Time{Time: due}
				event(ReasonJobCreated, fmt.Sprintf("created job %s for the run scheduled at %s (%s late)", name, at, late.Round(time.Millisecond)), 1, due)
			}
		}
		var last2 time.Time
		if out.Status.LastScheduleTime != nil {
			last2 = out.Status.LastScheduleTime.Time
		}
		p.wakeAt(sched.next(latestOf(out.CreationTimestamp.Time, last2, until)))
	}

	// History: the newest finished Jobs are kept, by outcome.
	var succeeded, failed []*jobRun
	for _, r := range slices.Backward(owned) {
		c := JobFinished(b.statusOf(r))
		if r.deleted || r.expire || r.record || c == nil {
			continue
		}
		if c.Type == batchv1.JobFailed {
			failed = append(failed, r)
			continue
		}
		succeeded = append(succeeded, r)
		if t := finishedAt(b.statusOf(r)); out.Status.LastSuccessfulTime == nil || t.After(out.Status.LastSuccessfulTime.Time) {
			out.Status.LastSuccessfulTime = &metav1.Time{Time: t}
		}
	}
	limit := func(rs []*jobRun, n *int32, what string) {
		keep := 0
		if n != nil {
			keep = max(int(*n), 0)
		}
		for _, r := range rs[min(keep, len(rs)):] {
			r.deleted, r.why = true, fmt.Sprintf("%s is %d", what, keep)
		}
	}
	limit(succeeded, out.Spec.SuccessfulJobsHistoryLimit, "successfulJobsHistoryLimit")
	limit(failed, out.Spec.FailedJobsHistoryLimit, "failedJobsHistoryLimit")

	out.Status.Active = nil
	for _, r := range active {
		if !r.deleted {
			out.Status.Active = append(out.Status.Active, corev1.ObjectReference{
				APIVersion: "batch/v1", Kind: "Job", Namespace: r.job.Namespace, Name: r.job.Name, UID: r.job.UID})
		}
	}
	slices.SortFunc(out.Status.Active, func(a, b corev1.ObjectReference) int { return cmp.Compare(a.Name, b.Name) })
	out.Annotations = cloneMap(dcj.Annotations)
	if !until.IsZero() {
		out.Annotations[AnnotationScheduledUntil] = until.UTC().Format(time.RFC3339)
		out.Annotations[AnnotationLastSkip] = lastSkip
	}
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}

	a := &Action{Type: PutCronJob, CronJob: out}
	if run != nil {
		a.Job = run.job
		a.Reason = "run " + run.job.Name
		return a
	}
	switch s := stored; {
	case s == nil:
		a.Reason = "create"
	case !equality.Semantic.DeepEqual(out.Spec, s.Spec) || !equality.Semantic.DeepEqual(out.Labels, s.Labels) ||
		!equality.Semantic.DeepEqual(out.Annotations, s.Annotations):
		a.Reason = "changed"
	case !equality.Semantic.DeepEqual(out.Status, s.Status) || out.Generation != s.Generation:
		a.Reason = fmt.Sprintf("status: %d active", len(out.Status.Active))
	default:
		return nil
	}
	return a
}

// statusOf is a Job's status as this plan leaves it.
func (b *batchPlan) statusOf(r *jobRun) *batchv1.JobStatus {
	if r.stepped {
		return &r.step.status
	}
	return &r.job.Status
}

// startRun creates the Job of a CronJob's run, from its jobTemplate, and
// takes its first step (its pods start in the same plan).
func (b *batchPlan) startRun(cj *batchv1.CronJob, name string, scheduled time.Time, loc *time.Location) *jobRun {
	p := b.p
	t := cj.Spec.JobTemplate.DeepCopy()
	ann := cloneMap(t.Annotations)
	ann[AnnotationScheduledTimestamp] = scheduled.In(loc).Format(time.RFC3339)
	controller, block := true, true
	j := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         cj.Namespace,
			Labels:            t.Labels,
			Annotations:       ann,
			UID:               objectUID("Job", cj.Namespace, name, string(cj.UID), p.now),
			CreationTimestamp: stamp(p.now),
			Generation:        1,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID,
				Controller: &controller, BlockOwnerDeletion: &block,
			}},
		},
		Spec: t.Spec,
	}
	r := &jobRun{key: key(j.Namespace, name), job: j, reason: "create", cron: key(cj.Namespace, cj.Name), scheduled: scheduled, viaCron: true}
	b.runs[r.key] = r
	b.stepRun(r)
	j.Status = r.step.status
	return r
}

// scheduledTime is when a CronJob's Job was scheduled: its annotation, or
// its creation.
func scheduledTime(j *batchv1.Job) time.Time {
	if t, err := time.Parse(time.RFC3339, j.Annotations[AnnotationScheduledTimestamp]); err == nil {
		return t
	}
	return j.CreationTimestamp.Time
}

func byScheduled(a, b *jobRun) int {
	return cmp.Or(a.scheduled.Compare(b.scheduled), cmp.Compare(a.key, b.key))
}

func latestOf(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

// wakeAt records a time at which planning again decides something new.
func (p *planner) wakeAt(t time.Time) {
	if t.IsZero() || !t.After(p.now) {
		return
	}
	if p.wake.IsZero() || t.Before(p.wake) {
		p.wake = t
	}
}

// sameExcept reports whether two maps are equal but for the given keys.
func sameExcept(a, b map[string]string, except ...string) bool {
	n := 0
	for k, v := range a {
		if slices.Contains(except, k) {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
		n++
	}
	for k := range b {
		if !slices.Contains(except, k) {
			n--
		}
	}
	return n == 0
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}
