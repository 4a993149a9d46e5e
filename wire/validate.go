package wire

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// minTimestamp is the earliest timestamp accepted: the Unix epoch.
var minTimestamp = time.Unix(0, 0).UTC()

// ParseKind maps the last path segment of a single-record endpoint (or a
// batch item's "kind") to a Kind: "remediation" or "workflow", exactly.
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KindRemediation, KindWorkflow:
		return Kind(s), nil
	case "":
		return "", invalid("kind", `Kind is required: "remediation" or "workflow"`)
	default:
		return "", invalid("kind", `Kind must be "remediation" or "workflow"`)
	}
}

// DurationMillis is DurationNanos in whole milliseconds (truncated), as the
// duration_ms column stores it; nil when no duration was sent.
func (a *RemediationAudit) DurationMillis() *int64 { return nanosToMillis(a.DurationNanos) }

// DurationMillis is DurationNanos in whole milliseconds (truncated), as the
// duration_ms column stores it; nil when no duration was sent.
func (a *WorkflowAudit) DurationMillis() *int64 { return nanosToMillis(a.DurationNanos) }

func nanosToMillis(ns *int64) *int64 {
	if ns == nil {
		return nil
	}
	ms := *ns / int64(time.Millisecond)
	return &ms
}

// Validate checks a record that is already decoded: what the agent re-reads
// from its queue and what the central is about to store. It requires a valid
// ID (assign one first), a known Kind with exactly its matching body set,
// ReceivedAt zero (not yet stamped) or within the timestamp range, and the
// body rules of DecodeAudit (see the package documentation). now is the
// validating side's clock. Errors are *ValidationError.
func (r *Record) Validate(now time.Time) error {
	if err := ValidateID(r.ID); err != nil {
		return err
	}
	if _, err := ParseKind(string(r.Kind)); err != nil {
		return err
	}
	if !r.ReceivedAt.IsZero() {
		if err := checkTime("receivedAt", r.ReceivedAt, now); err != nil {
			return err
		}
	}
	switch r.Kind {
	case KindRemediation:
		if r.Remediation == nil {
			return invalid("remediation", "Remediation record is missing")
		}
		if r.Workflow != nil {
			return invalid("workflow", "Workflow must not be set on a remediation record")
		}
		if verr := r.Remediation.validate(now); verr != nil {
			return verr
		}
		return nil
	default: // KindWorkflow
		if r.Workflow == nil {
			return invalid("workflow", "Workflow record is missing")
		}
		if r.Remediation != nil {
			return invalid("remediation", "Remediation must not be set on a workflow record")
		}
		if verr := r.Workflow.validate(now); verr != nil {
			return verr
		}
		return nil
	}
}

func (a *RemediationAudit) validate(now time.Time) *ValidationError {
	if err := checkRequired("remediationRequestID", a.RemediationRequestID); err != nil {
		return err
	}
	for _, f := range [...]struct {
		name  string
		value string
		max   int
	}{
		{"remediationRequestID", a.RemediationRequestID, MaxNameLen},
		{"alertName", a.AlertName, MaxNameLen},
		{"namespace", a.Namespace, MaxNameLen},
		{"cluster", a.Cluster, MaxNameLen},
		{"priority", a.Priority, MaxStatusLen},
		{"actionType", a.ActionType, MaxNameLen},
		{"reasoning", a.Reasoning, MaxTextLen},
		{"targetResource", a.TargetResource, MaxTargetResourceLen},
		{"status", a.Status, MaxStatusLen},
		{"errorMessage", a.ErrorMessage, MaxTextLen},
	} {
		if err := checkString(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	if c := a.Confidence; c != nil && (math.IsNaN(*c) || *c < 0 || *c > 1) {
		return invalid("confidence", "Confidence must be a number between 0 and 1")
	}
	if err := checkDuration("duration", a.DurationNanos); err != nil {
		return err
	}
	if err := checkTimePtr("createdAt", a.CreatedAt, now); err != nil {
		return err
	}
	return checkTimePtr("executedAt", a.ExecutedAt, now)
}

func (a *WorkflowAudit) validate(now time.Time) *ValidationError {
	for _, f := range [...]string{"workflowID", "stepName", "stepStatus"} {
		if err := checkRequired(f, a.field(f)); err != nil {
			return err
		}
	}
	for _, f := range [...]struct {
		name  string
		value string
		max   int
	}{
		{"workflowID", a.WorkflowID, MaxNameLen},
		{"stepName", a.StepName, MaxNameLen},
		{"stepStatus", a.StepStatus, MaxStatusLen},
		{"errorMessage", a.ErrorMessage, MaxTextLen},
	} {
		if err := checkString(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	if err := checkDuration("duration", a.DurationNanos); err != nil {
		return err
	}
	return checkTimePtr("executedAt", a.ExecutedAt, now)
}

func (a *WorkflowAudit) field(name string) string {
	switch name {
	case "workflowID":
		return a.WorkflowID
	case "stepName":
		return a.StepName
	default:
		return a.StepStatus
	}
}

func checkRequired(field, v string) *ValidationError {
	if strings.TrimSpace(v) == "" {
		return invalid(field, displayName(field)+" is required")
	}
	return nil
}

func checkString(field, v string, maxRunes int) *ValidationError {
	// Only a string longer in bytes than maxRunes can be too long in runes.
	if len(v) > maxRunes && utf8.RuneCountInString(v) > maxRunes {
		return invalid(field, displayName(field)+" must be at most "+strconv.Itoa(maxRunes)+" characters")
	}
	if strings.IndexByte(v, 0) >= 0 {
		return invalid(field, displayName(field)+" must not contain the NUL character (U+0000)")
	}
	if !utf8.ValidString(v) {
		return invalid(field, displayName(field)+" must be valid UTF-8")
	}
	return nil
}

func checkDuration(field string, ns *int64) *ValidationError {
	if ns == nil {
		return nil
	}
	if *ns < 0 {
		return invalid(field, displayName(field)+" must not be negative")
	}
	if *ns/int64(time.Millisecond) > MaxDurationMillis {
		return invalid(field, displayName(field)+" must be at most 2147483647 milliseconds (about 24.8 days)")
	}
	return nil
}

func checkTimePtr(field string, t *time.Time, now time.Time) *ValidationError {
	if t == nil {
		return nil
	}
	return checkTime(field, *t, now)
}

func checkTime(field string, t, now time.Time) *ValidationError {
	if t.Before(minTimestamp) {
		return invalid(field, displayName(field)+" must not be before 1970-01-01T00:00:00Z")
	}
	if t.After(now.Add(MaxFutureSkew)) {
		return invalid(field, displayName(field)+" is more than 24h in the future (impossible timestamp)")
	}
	return nil
}

// displayNames are the names messages use for JSON members, in the style of
// the spec's "RemediationRequestID is required".
var displayNames = map[string]string{
	"remediationRequestID": "RemediationRequestID",
	"alertName":            "AlertName",
	"namespace":            "Namespace",
	"cluster":              "Cluster",
	"priority":             "Priority",
	"actionType":           "ActionType",
	"confidence":           "Confidence",
	"reasoning":            "Reasoning",
	"targetResource":       "TargetResource",
	"status":               "Status",
	"duration":             "Duration",
	"durationMs":           "DurationMs",
	"errorMessage":         "ErrorMessage",
	"createdAt":            "CreatedAt",
	"executedAt":           "ExecutedAt",
	"workflowID":           "WorkflowID",
	"stepName":             "StepName",
	"stepStatus":           "StepStatus",
	"id":                   "ID",
	"kind":                 "Kind",
	"receivedAt":           "ReceivedAt",
	"record":               "Record",
	"records":              "Records",
	"remediation":          "Remediation",
	"workflow":             "Workflow",
	"reason":               "Reason",
}

func displayName(field string) string {
	if d, ok := displayNames[field]; ok {
		return d
	}
	return field
}
