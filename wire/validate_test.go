package wire_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func validRemediation() wire.Record {
	return wire.Record{
		ID:         "audit-0192f3a4-0000-7000-8000-000000000001",
		Kind:       wire.KindRemediation,
		ReceivedAt: testNow,
		Remediation: &wire.RemediationAudit{
			RemediationRequestID: "rr-1", Confidence: ptr(0.5), DurationNanos: ptr(int64(10)),
			CreatedAt: ptr(testNow.Add(-time.Hour)),
		},
	}
}

func validWorkflow() wire.Record {
	return wire.Record{
		ID:       "audit-2",
		Kind:     wire.KindWorkflow,
		Workflow: &wire.WorkflowAudit{WorkflowID: "wf", StepName: "s", StepStatus: "ok"},
	}
}

func TestRecordValidate_AcceptsDecodedRecords(t *testing.T) {
	for _, rec := range sampleRecords(t) {
		if rec.ID == "" {
			rec.ID = wire.NewID()
		}
		require.NoError(t, rec.Validate(testNow))
	}
	rec := validRemediation()
	require.NoError(t, rec.Validate(testNow))
	rec = validWorkflow()
	require.NoError(t, rec.Validate(testNow), "a zero ReceivedAt is not yet stamped")
}

func TestRecordValidate_RejectsBrokenRecords(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *wire.Record)
		field  string
	}{
		{"no ID", func(r *wire.Record) { r.ID = "" }, "id"},
		{"ID with a space", func(r *wire.Record) { r.ID = "audit 1" }, "id"},
		{"unknown kind", func(r *wire.Record) { r.Kind = "alert" }, "kind"},
		{"kind without its body", func(r *wire.Record) { r.Remediation = nil }, "remediation"},
		{"both bodies", func(r *wire.Record) { r.Workflow = validWorkflow().Workflow }, "workflow"},
		{"workflow kind on a remediation body", func(r *wire.Record) { r.Kind = wire.KindWorkflow }, "workflow"},
		{"receivedAt before 1970", func(r *wire.Record) { r.ReceivedAt = time.Unix(-1, 0) }, "receivedAt"},
		{"receivedAt far ahead", func(r *wire.Record) { r.ReceivedAt = testNow.Add(25 * time.Hour) }, "receivedAt"},
		{"blank required field", func(r *wire.Record) { r.Remediation.RemediationRequestID = " " }, "remediationRequestID"},
		{"NaN confidence", func(r *wire.Record) { r.Remediation.Confidence = ptr(math.NaN()) }, "confidence"},
		{"infinite confidence", func(r *wire.Record) { r.Remediation.Confidence = ptr(math.Inf(1)) }, "confidence"},
		{"negative duration", func(r *wire.Record) { r.Remediation.DurationNanos = ptr(int64(-1)) }, "duration"},
		{"NUL in a string", func(r *wire.Record) { r.Remediation.Cluster = "a\x00" }, "cluster"},
		{"invalid UTF-8", func(r *wire.Record) { r.Remediation.Namespace = "\xc3" }, "namespace"},
		{"zero timestamp not normalised", func(r *wire.Record) { r.Remediation.ExecutedAt = &time.Time{} }, "executedAt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := validRemediation()
			tc.mutate(&rec)
			requireValidationError(t, rec.Validate(testNow), tc.field)
		})
	}
	t.Run("workflow missing stepName", func(t *testing.T) {
		rec := validWorkflow()
		rec.Workflow.StepName = ""
		requireValidationError(t, rec.Validate(testNow), "stepName")
	})
	t.Run("remediation body on a workflow", func(t *testing.T) {
		rec := validWorkflow()
		rec.Remediation = validRemediation().Remediation
		requireValidationError(t, rec.Validate(testNow), "remediation")
	})
}

func TestDurationMillis_Truncates(t *testing.T) {
	a := wire.RemediationAudit{}
	require.Nil(t, a.DurationMillis())
	a.DurationNanos = ptr(int64(1_999_999))
	require.Equal(t, ptr(int64(1)), a.DurationMillis())
	w := wire.WorkflowAudit{DurationNanos: ptr(int64(999_999))}
	require.Equal(t, ptr(int64(0)), w.DurationMillis())
}
