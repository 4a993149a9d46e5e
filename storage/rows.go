package storage

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/wire"
)

// remediationRows holds the remediation records of a batch column by column,
// ready to be sent as arrays (one per column) or copied row by row. Optional
// strings are kept as sent; the SQL turns "" (not sent) into NULL.
type remediationRows struct {
	index                []int // position of each row in the WriteBatch input
	id                   []string
	remediationRequestID []string
	alertName            []string
	namespace            []string
	cluster              []string
	priority             []string
	actionType           []string
	status               []string
	confidence           []pgtype.Float8
	reasoning            []string
	targetResource       []string
	durationMs           []pgtype.Int4
	errorMessage         []string
	createdAt            []time.Time
	executedAt           []pgtype.Timestamptz
	receivedAt           []time.Time
	leaves               []ledger.Leaf // computeLeaves (ledger.go)
}

// workflowRows is remediationRows for workflow records.
type workflowRows struct {
	index        []int
	id           []string
	workflowID   []string
	stepName     []string
	stepStatus   []string
	durationMs   []pgtype.Int4
	errorMessage []string
	executedAt   []time.Time
	receivedAt   []time.Time
	leaves       []ledger.Leaf
}

func (r *remediationRows) len() int { return len(r.id) }
func (r *workflowRows) len() int    { return len(r.id) }

func (r *remediationRows) add(i int, rec *wire.Record) error {
	a := rec.Remediation
	if a == nil {
		return errors.New("kind remediation without a remediation body")
	}
	dur, err := durationMs(a.DurationMillis())
	if err != nil {
		return err
	}
	var conf pgtype.Float8
	if a.Confidence != nil {
		conf = pgtype.Float8{Float64: *a.Confidence, Valid: true}
	}
	createdAt := rec.ReceivedAt
	if a.CreatedAt != nil {
		createdAt = *a.CreatedAt
	}
	var executedAt pgtype.Timestamptz
	if a.ExecutedAt != nil {
		executedAt = pgtype.Timestamptz{Time: *a.ExecutedAt, Valid: true}
	}
	r.index = append(r.index, i)
	r.id = append(r.id, rec.ID)
	r.remediationRequestID = append(r.remediationRequestID, a.RemediationRequestID)
	r.alertName = append(r.alertName, a.AlertName)
	r.namespace = append(r.namespace, a.Namespace)
	r.cluster = append(r.cluster, a.Cluster)
	r.priority = append(r.priority, a.Priority)
	r.actionType = append(r.actionType, a.ActionType)
	r.status = append(r.status, a.Status)
	r.confidence = append(r.confidence, conf)
	r.reasoning = append(r.reasoning, a.Reasoning)
	r.targetResource = append(r.targetResource, a.TargetResource)
	r.durationMs = append(r.durationMs, dur)
	r.errorMessage = append(r.errorMessage, a.ErrorMessage)
	r.createdAt = append(r.createdAt, createdAt)
	r.executedAt = append(r.executedAt, executedAt)
	r.receivedAt = append(r.receivedAt, rec.ReceivedAt)
	return nil
}

func (r *workflowRows) add(i int, rec *wire.Record) error {
	w := rec.Workflow
	if w == nil {
		return errors.New("kind workflow without a workflow body")
	}
	dur, err := durationMs(w.DurationMillis())
	if err != nil {
		return err
	}
	executedAt := rec.ReceivedAt
	if w.ExecutedAt != nil {
		executedAt = *w.ExecutedAt
	}
	r.index = append(r.index, i)
	r.id = append(r.id, rec.ID)
	r.workflowID = append(r.workflowID, w.WorkflowID)
	r.stepName = append(r.stepName, w.StepName)
	r.stepStatus = append(r.stepStatus, w.StepStatus)
	r.durationMs = append(r.durationMs, dur)
	r.errorMessage = append(r.errorMessage, w.ErrorMessage)
	r.executedAt = append(r.executedAt, executedAt)
	r.receivedAt = append(r.receivedAt, rec.ReceivedAt)
	return nil
}

// durationMs turns wire's whole milliseconds (DurationMillis: truncated
// from the nanoseconds sent) into the int4 column; nil stays NULL.
func durationMs(ms *int64) (pgtype.Int4, error) {
	if ms == nil {
		return pgtype.Int4{}, nil
	}
	if *ms < math.MinInt32 || *ms > math.MaxInt32 {
		return pgtype.Int4{}, fmt.Errorf("duration of %d ms does not fit duration_ms (int4)", *ms)
	}
	return pgtype.Int4{Int32: int32(*ms), Valid: true}, nil
}
