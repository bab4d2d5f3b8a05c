package registry

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // CronJob time zones must resolve on hosts without /usr/share/zoneinfo

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation of batch/v1 jobs and cron jobs, after k8s.io/kubernetes
// pkg/apis/batch/validation.

const maxParallelismForIndexedJob = 100000

func validateJob(job, old *batchv1.Job) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&job.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	spec := &job.Spec
	errs = append(errs, validateJobSpec(spec, specPath)...)
	if spec.Selector == nil {
		errs = append(errs, field.Required(specPath.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, specPath.Child("selector"))...)
		// Whether manually or automatically generated, the selector must
		// match the pods the job will produce.
		if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !sel.Matches(labels.Set(spec.Template.Labels)) {
			errs = append(errs, field.Invalid(specPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
		}
	}
	if spec.ManualSelector == nil || !*spec.ManualSelector {
		// A generated selector selects this job's UID.
		if spec.Selector != nil && job.UID != "" {
			if v, ok := spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; ok && v != string(job.UID) {
				errs = append(errs, field.Invalid(specPath.Child("selector").Child("matchLabels").Key(batchv1.ControllerUidLabel), v,
					fmt.Sprintf("must be '%s'", job.UID)))
			}
		}
	}
	if old != nil {
		errs = append(errs, validateJobSpecUpdate(spec, &old.Spec, old.Status.StartTime == nil)...)
	}
	return errs
}

// validateJobSpec checks what a Job and a CronJob's job template share.
func validateJobSpec(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateNonnegative32(spec.Parallelism, fldPath.Child("parallelism"))...)
	errs = append(errs, validateNonnegative32(spec.Completions, fldPath.Child("completions"))...)
	errs = append(errs, validateNonnegative32(spec.BackoffLimit, fldPath.Child("backoffLimit"))...)
	errs = append(errs, validateNonnegative32(spec.TTLSecondsAfterFinished, fldPath.Child("ttlSecondsAfterFinished"))...)
	if spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, validateNonnegative(*spec.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	}
	indexed := false
	if spec.CompletionMode != nil {
		switch *spec.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			indexed = true
			if spec.Completions == nil {
				errs = append(errs, field.Required(fldPath.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
			}
			if spec.Parallelism != nil && *spec.Parallelism > maxParallelismForIndexedJob {
				errs = append(errs, field.Invalid(fldPath.Child("parallelism"), *spec.Parallelism,
					fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxParallelismForIndexedJob, batchv1.IndexedCompletion)))
			}
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("completionMode"), *spec.CompletionMode,
				[]batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
	}
	if spec.BackoffLimitPerIndex != nil {
		errs = append(errs, validateNonnegative32(spec.BackoffLimitPerIndex, fldPath.Child("backoffLimitPerIndex"))...)
		if !indexed {
			errs = append(errs, field.Forbidden(fldPath.Child("backoffLimitPerIndex"), "requires indexed completion mode"))
		}
	}
	if spec.PodReplacementPolicy != nil {
		valid := []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}
		if !hasValue(valid, *spec.PodReplacementPolicy) {
			errs = append(errs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *spec.PodReplacementPolicy, valid))
		} else if *spec.PodReplacementPolicy == batchv1.TerminatingOrFailed && spec.PodFailurePolicy != nil {
			errs = append(errs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *spec.PodReplacementPolicy, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	tmplPath := fldPath.Child("template")
	errs = append(errs, validatePodTemplateSpec(&spec.Template, tmplPath)...)
	switch rp := spec.Template.Spec.RestartPolicy; {
	case rp == corev1.RestartPolicyAlways || rp == "":
		errs = append(errs, field.Required(tmplPath.Child("spec", "restartPolicy"),
			fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(tmplPath.Child("spec", "restartPolicy"), rp,
			[]corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case spec.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(tmplPath.Child("spec", "restartPolicy"), rp,
			fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return errs
}

// validateJobSpecUpdate: selector, completion mode, pod failure policy and the
// template are immutable (a suspended job that never started may change its
// template's scheduling directives, labels and annotations); completions may
// only change for an indexed job, in tandem with parallelism.
func validateJobSpecUpdate(spec, old *batchv1.JobSpec, neverStarted bool) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, apivalidation.ValidateImmutableField(spec.Selector, old.Selector, specPath.Child("selector"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(spec.CompletionMode, old.CompletionMode, specPath.Child("completionMode"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(spec.PodFailurePolicy, old.PodFailurePolicy, specPath.Child("podFailurePolicy"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(spec.BackoffLimitPerIndex, old.BackoffLimitPerIndex, specPath.Child("backoffLimitPerIndex"))...)

	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	if !indexed {
		errs = append(errs, apivalidation.ValidateImmutableField(spec.Completions, old.Completions, specPath.Child("completions"))...)
	} else if !semanticEqual(spec.Completions, old.Completions) && spec.Completions != nil &&
		(spec.Parallelism == nil || *spec.Completions != *spec.Parallelism) {
		errs = append(errs, field.Invalid(specPath.Child("completions"), spec.Completions, "can only be modified in tandem with spec.parallelism"))
	}

	oldTemplate := &old.Template
	if old.Suspend != nil && *old.Suspend && neverStarted {
		oldTemplate = old.Template.DeepCopy()
		oldTemplate.Spec.NodeSelector = spec.Template.Spec.NodeSelector
		oldTemplate.Spec.Tolerations = spec.Template.Spec.Tolerations
		oldTemplate.Spec.SchedulingGates = spec.Template.Spec.SchedulingGates
		oldTemplate.Annotations = spec.Template.Annotations
		oldTemplate.Labels = spec.Template.Labels
		switch {
		case spec.Template.Spec.Affinity == nil && oldTemplate.Spec.Affinity != nil:
			oldTemplate.Spec.Affinity.NodeAffinity = nil
			if *oldTemplate.Spec.Affinity == (corev1.Affinity{}) {
				oldTemplate.Spec.Affinity = nil
			}
		case spec.Template.Spec.Affinity != nil && oldTemplate.Spec.Affinity == nil:
			oldTemplate.Spec.Affinity = &corev1.Affinity{NodeAffinity: spec.Template.Spec.Affinity.NodeAffinity}
		case spec.Template.Spec.Affinity != nil && oldTemplate.Spec.Affinity != nil:
			oldTemplate.Spec.Affinity.NodeAffinity = spec.Template.Spec.Affinity.NodeAffinity
		}
	}
	errs = append(errs, apivalidation.ValidateImmutableField(spec.Template, *oldTemplate, specPath.Child("template"))...)
	return errs
}

// CronJobs -------------------------------------------------------------------

var validTimeZoneCharacters = regexp.MustCompile(`^[A-Za-z\.\-_0-9+]{1,14}$`)

func validateCronJob(cj, old *batchv1.CronJob) field.ErrorList {
	var om *metav1.ObjectMeta
	if old != nil {
		om = &old.ObjectMeta
	}
	errs := validateObjectMeta(&cj.ObjectMeta, om, true, apivalidation.NameIsDNSSubdomain)
	if old == nil && len(cj.Name) > 52 {
		// The controller appends an 11-character suffix to name the jobs,
		// whose names (and job-name labels) are limited to 63 characters.
		errs = append(errs, field.Invalid(metadataPath.Child("name"), cj.Name, "must be no more than 52 characters"))
	}
	spec := &cj.Spec
	allowTZInSchedule := old != nil && strings.Contains(old.Spec.Schedule, "TZ")
	if spec.Schedule == "" {
		errs = append(errs, field.Required(specPath.Child("schedule"), ""))
	} else {
		errs = append(errs, validateScheduleFormat(spec.Schedule, allowTZInSchedule, spec.TimeZone, specPath.Child("schedule"))...)
	}
	errs = append(errs, validateTimeZone(spec.TimeZone, specPath.Child("timeZone"))...)
	if spec.StartingDeadlineSeconds != nil {
		errs = append(errs, validateNonnegative(*spec.StartingDeadlineSeconds, specPath.Child("startingDeadlineSeconds"))...)
	}
	valid := []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}
	switch {
	case spec.ConcurrencyPolicy == "":
		errs = append(errs, field.Required(specPath.Child("concurrencyPolicy"), ""))
	case !hasValue(valid, spec.ConcurrencyPolicy):
		errs = append(errs, field.NotSupported(specPath.Child("concurrencyPolicy"), spec.ConcurrencyPolicy, valid))
	}
	errs = append(errs, validateNonnegative32(spec.SuccessfulJobsHistoryLimit, specPath.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, validateNonnegative32(spec.FailedJobsHistoryLimit, specPath.Child("failedJobsHistoryLimit"))...)

	jtPath := specPath.Child("jobTemplate")
	jt := &spec.JobTemplate
	errs = append(errs, metav1validation.ValidateLabels(jt.Labels, jtPath.Child("metadata", "labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(jt.Annotations, jtPath.Child("metadata", "annotations"))...)
	errs = append(errs, validateJobSpec(&jt.Spec, jtPath.Child("spec"))...)
	if jt.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jtPath.Child("spec", "selector"), jt.Spec.Selector, "`selector` will be auto-generated"))
	}
	if jt.Spec.ManualSelector != nil && *jt.Spec.ManualSelector {
		errs = append(errs, field.NotSupported(jtPath.Child("spec", "manualSelector"), jt.Spec.ManualSelector, []string{"nil", "false"}))
	}
	return errs
}

func validateScheduleFormat(schedule string, allowTZInSchedule bool, timeZone *string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if err := parseCronSchedule(schedule); err != nil {
		errs = append(errs, field.Invalid(fldPath, schedule, err.Error()))
	}
	switch {
	case allowTZInSchedule && strings.Contains(schedule, "TZ") && timeZone != nil:
		errs = append(errs, field.Invalid(fldPath, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
	case !allowTZInSchedule && strings.Contains(schedule, "TZ"):
		errs = append(errs, field.Invalid(fldPath, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	}
	return errs
}

func validateTimeZone(tz *string, fldPath *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(fldPath, *tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !validTimeZoneCharacters.MatchString(part) {
			return field.ErrorList{field.Invalid(fldPath, *tz, fmt.Sprintf("unknown time zone %s", *tz))}
		}
	}
	var errs field.ErrorList
	if strings.EqualFold(*tz, "Local") {
		errs = append(errs, field.Invalid(fldPath, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		errs = append(errs, field.Invalid(fldPath, *tz, err.Error()))
	}
	return errs
}

// parseCronSchedule checks a CronJob schedule the way Kubernetes does
// (github.com/robfig/cron/v3 ParseStandard): five space-separated fields
// (minute hour day-of-month month day-of-week) of numbers, names (JAN-DEC,
// SUN-SAT), "*" or "?", ranges "a-b", steps "/n" and lists "a,b"; or one of
// the descriptors @yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly, "@every <duration>"; optionally prefixed by TZ=<zone> or
// CRON_TZ=<zone>. The error text follows robfig/cron's.
func parseCronSchedule(spec string) error {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return fmt.Errorf("empty spec string")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		i := strings.Index(spec, " ")
		if i < 0 {
			i = len(spec)
		}
		eq := strings.Index(spec, "=")
		if _, err := time.LoadLocation(spec[eq+1 : i]); err != nil {
			return fmt.Errorf("provided bad location %s: %v", spec[eq+1:i], err)
		}
		spec = strings.TrimSpace(spec[i:])
	}
	if strings.HasPrefix(spec, "@") {
		switch spec {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		const every = "@every "
		if strings.HasPrefix(spec, every) {
			d, err := time.ParseDuration(spec[len(every):])
			if err != nil {
				return fmt.Errorf("failed to parse duration %s: %s", spec, err)
			}
			if d <= 0 {
				return fmt.Errorf("failed to parse duration %s: must be positive", spec)
			}
			return nil
		}
		return fmt.Errorf("unrecognized descriptor: %s", spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(fields), fields)
	}
	for i, f := range fields {
		if err := parseCronField(f, cronBounds[i]); err != nil {
			return err
		}
	}
	return nil
}

type cronBound struct {
	min, max int
	names    map[string]int
}

var cronBounds = []cronBound{
	{0, 59, nil}, // minute
	{0, 23, nil}, // hour
	{1, 31, nil}, // day of month
	{1, 12, map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
	{0, 6, map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
}

func parseCronField(f string, b cronBound) error {
	for _, expr := range strings.Split(f, ",") {
		if err := parseCronRange(expr, b); err != nil {
			return err
		}
	}
	return nil
}

func parseCronRange(expr string, b cronBound) error {
	rangeAndStep := strings.Split(expr, "/")
	lowAndHigh := strings.Split(rangeAndStep[0], "-")
	single := len(lowAndHigh) == 1
	var start, end int
	var err error
	if lowAndHigh[0] == "*" || lowAndHigh[0] == "?" {
		start, end = b.min, b.max
	} else {
		if start, err = cronIntOrName(lowAndHigh[0], b.names); err != nil {
			return err
		}
		switch len(lowAndHigh) {
		case 1:
			end = start
		case 2:
			if end, err = cronIntOrName(lowAndHigh[1], b.names); err != nil {
				return err
			}
		default:
			return fmt.Errorf("too many hyphens: %s", expr)
		}
	}
	step := 1
	switch len(rangeAndStep) {
	case 1:
	case 2:
		if step, err = cronInt(rangeAndStep[1]); err != nil {
			return err
		}
		if single {
			end = b.max
		}
	default:
		return fmt.Errorf("too many slashes: %s", expr)
	}
	switch {
	case start < b.min:
		return fmt.Errorf("beginning of range (%d) below minimum (%d): %s", start, b.min, expr)
	case end > b.max:
		return fmt.Errorf("end of range (%d) above maximum (%d): %s", end, b.max, expr)
	case start > end:
		return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, expr)
	case step == 0:
		return fmt.Errorf("step of range should be a positive number: %s", expr)
	}
	return nil
}

func cronIntOrName(s string, names map[string]int) (int, error) {
	if names != nil {
		if n, ok := names[strings.ToLower(s)]; ok {
			return n, nil
		}
	}
	return cronInt(s)
}

func cronInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %s", s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative number (%d) not allowed: %s", n, s)
	}
	return n, nil
}
