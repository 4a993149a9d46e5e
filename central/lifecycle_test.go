package central_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// A record older than its kind's retention is refused, naming the field its
// event time came from; one inside it is stored. Batch items one by one.
func TestWrite_RecordsOlderThanTheRetentionAreRefused(t *testing.T) {
	now := time.Now().UTC()
	h := newHarness(t, options{horizon: func(k wire.Kind, at time.Time) time.Time {
		if k == wire.KindRemediation {
			return at.AddDate(0, 0, -40)
		}
		return time.Time{} // workflow audits kept forever
	}})
	gw := tokenOf("gateway-sa")
	old, recent := now.AddDate(0, 0, -41).Format(time.RFC3339), now.AddDate(0, 0, -39).Format(time.RFC3339)

	r := h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"remediationRequestID":"rr-1","createdAt":"`+old+`"}`))
	assert.Equal(t, 400, r.status, r.body)
	var body wire.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Equal(t, wire.CodeValidationFailed, body.Error)
	assert.Equal(t, "createdAt", body.Field)
	assert.Contains(t, body.Message, "older than the retention of remediation audits (40 days)")
	assert.Equal(t, 201, h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"remediationRequestID":"rr-1","createdAt":"`+recent+`"}`)).status)

	batch := `{"records":[
		{"kind":"remediation","record":{"remediationRequestID":"rr-2","createdAt":"` + old + `"}},
		{"kind":"remediation","receivedAt":"` + old + `","record":{"remediationRequestID":"rr-2"}},
		{"kind":"remediation","record":{"remediationRequestID":"rr-2","createdAt":"` + recent + `"}},
		{"kind":"workflow","record":{"workflowID":"wf-1","stepName":"s","stepStatus":"ok","executedAt":"` + old + `"}}]}`
	r = h.post(t, "/api/v1/audit/batch", tokenOf("aianalysis-controller-sa"), []byte(batch))
	require.Equal(t, 200, r.status, r.body)
	var resp wire.BatchResponse
	require.NoError(t, json.Unmarshal([]byte(r.body), &resp))
	assert.Equal(t, 3, resp.Rejected)
	assert.Equal(t, "records[0].createdAt", resp.Results[0].Error.Field)
	assert.Equal(t, wire.StatusRejected, resp.Results[1].Status, "an old receivedAt is the event time when createdAt is absent")
	assert.Equal(t, wire.StatusPersisted, resp.Results[2].Status)
	assert.Equal(t, wire.StatusRejected, resp.Results[3].Status, "the workflow writer may not write here")
}

// A direct writer retries its Idempotency-Key the next month without a
// createdAt: the record's event time is each arrival's time, in two
// partitions, and it is still one row under one ID.
func TestWrite_IdempotencyKeyRetriedNextMonthIsOneRecord(t *testing.T) {
	var clock atomic.Int64
	h := newHarness(t, options{now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	parts, err := h.db.Partitions(t.Context(), wire.KindRemediation)
	require.NoError(t, err)
	boundary := parts[len(parts)-1].To
	_, err = h.db.EnsurePartitions(t.Context(), boundary.AddDate(0, 2, 0), storage.PeriodMonth)
	require.NoError(t, err)

	body := []byte(`{"remediationRequestID":"rr-1","alertName":"A"}`)
	clock.Store(boundary.Add(-time.Minute).UnixNano())
	first := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), body, "Idempotency-Key", "k-1"))
	clock.Store(boundary.AddDate(0, 1, 3).UnixNano())
	again := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), body, "Idempotency-Key", "k-1"))
	assert.Equal(t, first.AuditID, again.AuditID)
	assert.Equal(t, 1, h.rows(t, "remediation_audit"))
	var created time.Time
	require.NoError(t, h.pool.QueryRow(t.Context(), `SELECT created_at FROM remediation_audit`).Scan(&created))
	assert.True(t, created.Before(boundary), "the first arrival's row stays, in its partition")
}
