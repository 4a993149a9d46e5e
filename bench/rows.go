package bench

import (
	"time"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/wire"
)

// The columns of the audit tables (storage/migrations), as storage writes them.
var (
	remediationColumns = []string{"id", "remediation_request_id", "alert_name", "namespace", "cluster",
		"priority", "action_type", "status", "confidence", "reasoning", "target_resource", "duration_ms",
		"error_message", "created_at", "executed_at", "service_account", "received_at"}
	workflowColumns = []string{"id", "workflow_id", "step_name", "step_status", "duration_ms",
		"error_message", "executed_at", "service_account", "received_at"}
)

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func millis(d *int64) any {
	if d == nil {
		return nil
	}
	return int32(*d / int64(time.Millisecond))
}

func timeOr(t *time.Time, def time.Time) time.Time {
	if t == nil || t.IsZero() {
		return def
	}
	return *t
}

// rowValues is r as a row of its table, in remediationColumns or
// workflowColumns order.
func rowValues(r *wire.Record, sa string) []any {
	if a := r.Remediation; a != nil {
		var conf any
		if a.Confidence != nil {
			conf = *a.Confidence
		}
		var exec any
		if a.ExecutedAt != nil {
			exec = *a.ExecutedAt
		}
		return []any{r.ID, a.RemediationRequestID, nullable(a.AlertName), nullable(a.Namespace), nullable(a.Cluster),
			nullable(a.Priority), nullable(a.ActionType), nullable(a.Status), conf, nullable(a.Reasoning),
			nullable(a.TargetResource), millis(a.DurationNanos), nullable(a.ErrorMessage),
			timeOr(a.CreatedAt, r.ReceivedAt), exec, sa, r.ReceivedAt}
	}
	a := r.Workflow
	return []any{r.ID, a.WorkflowID, a.StepName, a.StepStatus, millis(a.DurationNanos), nullable(a.ErrorMessage),
		timeOr(a.ExecutedAt, r.ReceivedAt), sa, r.ReceivedAt}
}

// genRecords makes n records of the standard mix with IDs.
func genRecords(cfg Config, n int) []wire.Record {
	gen := loadgen.NewGenerator(cfg.Seed, 1<<40, cfg.RepeatFraction, cfg.AlertTexts)
	now := time.Now().UTC()
	out := make([]wire.Record, n)
	for i := range out {
		out[i] = gen.Record(i%4, "copy-"+wire.NewID(), now)
		out[i].ID = wire.NewID()
		out[i].ReceivedAt = now
	}
	return out
}
