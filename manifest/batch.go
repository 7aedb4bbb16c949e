package manifest

import (
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Kubernetes' limits on the names of batch objects: a Job's name becomes
// the value of its pods' job-name label (63 characters), and a CronJob's
// Jobs are named <cronjob>-<scheduled time in minutes> (11 more).
const (
	maxJobNameLength     = validation.DNS1123LabelMaxLength
	maxCronJobNameLength = 52
)

// Defaults Kubernetes gives Jobs and CronJobs.
const (
	DefaultBackoffLimit               = 6
	DefaultSuccessfulJobsHistoryLimit = 3
	DefaultFailedJobsHistoryLimit     = 1
)

// CronParser parses CronJob schedules as Kubernetes does: five fields
// (minute hour day-of-month month day-of-week) or a descriptor such as
// @hourly.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func defaultJob(j *batchv1.Job) {
	if j.Namespace == "" {
		j.Namespace = DefaultNamespace
	}
	defaultJobSpec(&j.Spec)
}

func defaultJobSpec(spec *batchv1.JobSpec) {
	one := int32(1)
	if spec.Parallelism == nil {
		p := one
		spec.Parallelism = &p
	}
	if spec.Completions == nil && *spec.Parallelism == 1 {
		c := one
		spec.Completions = &c
	}
	if spec.BackoffLimit == nil {
		b := int32(DefaultBackoffLimit)
		spec.BackoffLimit = &b
	}
	if spec.CompletionMode == nil {
		m := batchv1.NonIndexedCompletion
		spec.CompletionMode = &m
	}
	if spec.Suspend == nil {
		f := false
		spec.Suspend = &f
	}
	defaultPodSpec(&spec.Template.Spec, "")
}

func validateJob(j *batchv1.Job) problems {
	var ps problems
	validateObjectMeta(&j.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	if len(j.Name) > maxJobNameLength {
		ps.add(field.NewPath("metadata", "name"), "must be at most %d characters: it becomes the value of the job-name label", maxJobNameLength)
	}
	validateJobSpec(&j.Spec, field.NewPath("spec"), &ps)
	return ps
}

func validateJobSpec(spec *batchv1.JobSpec, path *field.Path, ps *problems) {
	nonNegative := func(v *int32, name string) {
		if v != nil && *v < 0 {
			ps.add(path.Child(name), "must be >= 0")
		}
	}
	nonNegative(spec.Parallelism, "parallelism")
	nonNegative(spec.Completions, "completions")
	nonNegative(spec.BackoffLimit, "backoffLimit")
	nonNegative(spec.TTLSecondsAfterFinished, "ttlSecondsAfterFinished")
	if spec.ActiveDeadlineSeconds != nil && *spec.ActiveDeadlineSeconds <= 0 {
		ps.add(path.Child("activeDeadlineSeconds"), "must be > 0")
	}
	if m := spec.CompletionMode; m != nil && *m != batchv1.NonIndexedCompletion {
		ps.add(path.Child("completionMode"), "unsupported value %q: bosun runs NonIndexed Jobs", *m)
	}
	tmpl := path.Child("template")
	validateTemplateMeta(&spec.Template.ObjectMeta, tmpl.Child("metadata"), true, ps)
	validatePodSpec(&spec.Template.Spec, tmpl.Child("spec"), ownerJob, ps)
}

func defaultCronJob(cj *batchv1.CronJob) {
	if cj.Namespace == "" {
		cj.Namespace = DefaultNamespace
	}
	if cj.Spec.ConcurrencyPolicy == "" {
		cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if cj.Spec.Suspend == nil {
		f := false
		cj.Spec.Suspend = &f
	}
	if cj.Spec.SuccessfulJobsHistoryLimit == nil {
		n := int32(DefaultSuccessfulJobsHistoryLimit)
		cj.Spec.SuccessfulJobsHistoryLimit = &n
	}
	if cj.Spec.FailedJobsHistoryLimit == nil {
		n := int32(DefaultFailedJobsHistoryLimit)
		cj.Spec.FailedJobsHistoryLimit = &n
	}
	defaultJobSpec(&cj.Spec.JobTemplate.Spec)
}

func validateCronJob(cj *batchv1.CronJob) problems {
	var ps problems
	validateObjectMeta(&cj.ObjectMeta, validation.IsDNS1123Subdomain, subdomainRule, &ps)
	if len(cj.Name) > maxCronJobNameLength {
		ps.add(field.NewPath("metadata", "name"), "must be at most %d characters: its Jobs are named <name>-<scheduled time>", maxCronJobNameLength)
	}
	spec := field.NewPath("spec")
	sched := strings.TrimSpace(cj.Spec.Schedule)
	switch {
	case sched == "":
		ps.add(spec.Child("schedule"), "required")
	case strings.Contains(sched, "TZ"):
		ps.add(spec.Child("schedule"), "must not name a time zone (TZ= or CRON_TZ=): use spec.timeZone")
	default:
		if _, err := CronParser.Parse(sched); err != nil {
			ps.add(spec.Child("schedule"), "invalid schedule %q: %v", cj.Spec.Schedule, err)
		}
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || *tz == "" || *tz == "Local" {
			ps.add(spec.Child("timeZone"), "unknown time zone %q: use an IANA name such as Europe/Berlin or Etc/UTC", *tz)
		}
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && *d < 0 {
		ps.add(spec.Child("startingDeadlineSeconds"), "must be >= 0")
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		ps.add(spec.Child("concurrencyPolicy"), "unsupported value %q: must be Allow, Forbid or Replace", cj.Spec.ConcurrencyPolicy)
	}
	for name, v := range map[string]*int32{"successfulJobsHistoryLimit": cj.Spec.SuccessfulJobsHistoryLimit, "failedJobsHistoryLimit": cj.Spec.FailedJobsHistoryLimit} {
		if v != nil && *v < 0 {
			ps.add(spec.Child(name), "must be >= 0")
		}
	}
	jt := spec.Child("jobTemplate")
	validateTemplateMeta(&cj.Spec.JobTemplate.ObjectMeta, jt.Child("metadata"), false, &ps)
	validateJobSpec(&cj.Spec.JobTemplate.Spec, jt.Child("spec"), &ps)
	return ps
}
