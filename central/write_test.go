package central_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/wire"
)

var auditIDPattern = regexp.MustCompile(`^audit-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func decodeWrite(t *testing.T, r response) wire.WriteResponse {
	t.Helper()
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var w wire.WriteResponse
	require.NoError(t, json.Unmarshal([]byte(r.body), &w))
	assert.Equal(t, "persisted", w.Status)
	assert.Regexp(t, auditIDPattern, w.AuditID)
	return w
}

func TestWrite_SpecExamplesArePersisted(t *testing.T) {
	h := newHarness(t, options{})
	ctx := context.Background()

	t.Run("gateway, as in the spec's data flow", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{
			"remediationRequestID": "rr-abc123",
			"alertName": "HighMemoryUsage",
			"namespace": "production",
			"cluster": "us-west-2",
			"priority": "P0"
		}`))
		w := decodeWrite(t, r)
		var alert, cluster, priority, sa string
		var status *string
		require.NoError(t, h.pool.QueryRow(ctx, `SELECT alert_name, cluster, priority, status, service_account
			FROM remediation_audit WHERE id = $1`, w.AuditID).Scan(&alert, &cluster, &priority, &status, &sa))
		assert.Equal(t, "HighMemoryUsage", alert)
		assert.Equal(t, "us-west-2", cluster)
		assert.Equal(t, "P0", priority)
		assert.Nil(t, status, "the gateway sends no status: stored as NULL")
		assert.Equal(t, ns+"/gateway-sa", sa)
	})

	t.Run("ai analysis decision, marshalled by the spec's Go client", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/remediation", tokenOf("aianalysis-controller-sa"), []byte(`{
			"remediationRequestID":"rr-abc123","alertName":"HighMemoryUsage","namespace":"production",
			"cluster":"us-west-2","priority":"","actionType":"restart-pod","confidence":0.87,
			"reasoning":"Memory grew linearly for 40 minutes; a restart cleared the same pattern twice before.",
			"targetResource":"","status":"","duration":0,"errorMessage":"",
			"createdAt":"2025-10-06T10:00:00Z","executedAt":"0001-01-01T00:00:00Z"}`))
		w := decodeWrite(t, r)
		var conf float64
		var created time.Time
		var executed *time.Time
		require.NoError(t, h.pool.QueryRow(ctx, `SELECT confidence, created_at, executed_at
			FROM remediation_audit WHERE id = $1`, w.AuditID).Scan(&conf, &created, &executed))
		assert.InDelta(t, 0.87, conf, 1e-9)
		assert.True(t, created.Equal(time.Date(2025, 10, 6, 10, 0, 0, 0, time.UTC)), created)
		assert.Nil(t, executed, "Go's zero time means not sent")
	})

	t.Run("kubernetes executor action with a duration in nanoseconds", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/remediation", tokenOf("kubernetes-executor-sa"), []byte(`{
			"remediationRequestID":"rr-abc123","actionType":"restart-pod",
			"targetResource":"production/Deployment/web","status":"failed",
			"duration":2500000000,"errorMessage":"pods \"web-1\" is forbidden",
			"executedAt":"2025-10-06T10:01:00Z"}`))
		w := decodeWrite(t, r)
		var ms int64
		var target, errMsg string
		require.NoError(t, h.pool.QueryRow(ctx, `SELECT duration_ms, target_resource, error_message
			FROM remediation_audit WHERE id = $1`, w.AuditID).Scan(&ms, &target, &errMsg))
		assert.Equal(t, int64(2500), ms)
		assert.Equal(t, "production/Deployment/web", target)
		assert.Equal(t, `pods "web-1" is forbidden`, errMsg)
	})

	t.Run("workflow step", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/workflow", tokenOf("workflowexecution-controller-sa"), []byte(`{
			"workflowID":"wf-42","stepName":"scale-up","stepStatus":"completed",
			"duration":1200000000,"errorMessage":"","executedAt":"2025-10-06T10:02:00Z"}`))
		w := decodeWrite(t, r)
		var step string
		var ms int64
		require.NoError(t, h.pool.QueryRow(ctx, `SELECT step_name, duration_ms FROM workflow_audit WHERE id = $1`,
			w.AuditID).Scan(&step, &ms))
		assert.Equal(t, "scale-up", step)
		assert.Equal(t, int64(1200), ms)
	})
}

func TestWrite_ErrorsHaveTheSpecBodies(t *testing.T) {
	h := newHarness(t, options{})
	valid := []byte(`{"remediationRequestID":"rr-1"}`)
	gw := tokenOf("gateway-sa")

	cases := []struct {
		name   string
		send   func() response
		status int
		body   string
	}{
		{"missing remediationRequestID is 400 naming the field", func() response {
			return h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"alertName":"x"}`), invalidByDesign, "no remediationRequestID")
		}, 400, `{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`},
		{"no token is 401", func() response {
			return h.post(t, "/api/v1/audit/remediation", "", valid, invalidByDesign, "no token")
		}, 401, `{"error":"authentication_failed","message":"Token validation failed"}`},
		{"an unknown token is 401", func() response {
			return h.post(t, "/api/v1/audit/remediation", "not-a-token", valid)
		}, 401, `{"error":"authentication_failed","message":"Token validation failed"}`},
		{"a service account outside the allow-list is 403", func() response {
			return h.post(t, "/api/v1/audit/remediation", outsiderToken, valid)
		}, 403, `{"error":"authorization_failed","message":"Service account not authorized for write operations"}`},
		{"the workflow writer may not write remediation audits", func() response {
			return h.post(t, "/api/v1/audit/remediation", tokenOf("workflowexecution-controller-sa"), valid)
		}, 403, `{"error":"authorization_failed","message":"Service account not authorized for write operations"}`},
		{"a wrong content type is 415", func() response {
			return h.post(t, "/api/v1/audit/remediation", gw, valid, "Content-Type", "text/plain", invalidByDesign, "text/plain")
		}, 415, ""},
		{"an unknown path is 404", func() response {
			return h.post(t, "/api/v1/audit/other", gw, valid, invalidByDesign, "no such path")
		}, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.send()
			require.Equal(t, c.status, r.status, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			if c.body != "" {
				assert.JSONEq(t, c.body, r.body)
			} else {
				assertErrorShape(t, r.body)
			}
		})
	}

	t.Run("PUT on a write endpoint is 405 with Allow", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, h.url+"/api/v1/audit/remediation", nil)
		r := h.do(t, markInvalid(req, "a method the path does not take"))
		require.Equal(t, 405, r.status)
		assert.Equal(t, "GET, POST", r.header.Get("Allow"), "GET queries stored audits")
		assertErrorShape(t, r.body)
	})
	t.Run("GET on the batch endpoint is 405 with Allow", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/api/v1/audit/batch", nil)
		r := h.do(t, markInvalid(req, "a method the path does not take"))
		require.Equal(t, 405, r.status)
		assert.Equal(t, "POST", r.header.Get("Allow"))
		assertErrorShape(t, r.body)
	})

	t.Run("a record larger than 64 KiB is 413", func(t *testing.T) {
		big := fmt.Sprintf(`{"remediationRequestID":"rr-1","reasoning":%q}`, strings.Repeat("x", wire.MaxRecordBytes))
		r := h.post(t, "/api/v1/audit/remediation", gw, []byte(big), invalidByDesign, "reasoning too long")
		require.Equal(t, 413, r.status, r.body)
		assertErrorShape(t, r.body)
	})

	assert.Zero(t, h.rows(t, "remediation_audit"), "nothing refused may be stored")
}

// assertErrorShape checks the spec's error body: error and message, nothing unknown.
func assertErrorShape(t *testing.T, body string) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	assert.NotEmpty(t, m["error"], body)
	assert.NotEmpty(t, m["message"], body)
	for k := range m {
		assert.Contains(t, []string{"error", "message", "field", "correlation_id"}, k)
	}
}

func TestWrite_RateLimitIsPerServiceAccountAndCountsRecords(t *testing.T) {
	h := newHarness(t, options{rate: 0.001, burst: 3})
	gw := tokenOf("gateway-sa")
	for i := 0; i < 3; i++ {
		decodeWrite(t, h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"remediationRequestID":"rr-1"}`)))
	}
	r := h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"remediationRequestID":"rr-1"}`))
	require.Equal(t, 429, r.status, r.body)
	assert.JSONEq(t, `{"error":"rate_limit_exceeded","message":"Too many requests. Limit: 0.001 records/s per service account"}`, r.body)
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	// Another service account has its own budget.
	decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("aianalysis-controller-sa"), []byte(`{"remediationRequestID":"rr-1"}`)))

	// A batch larger than the burst could never pass: 413, saying the limit.
	r = h.post(t, "/api/v1/audit/batch", tokenOf("kubernetes-executor-sa"), batchBody(t, 4, "remediation"))
	require.Equal(t, 413, r.status, r.body)
	assert.Contains(t, r.body, "burst of 3 records")
	assert.Equal(t, 4, h.rows(t, "remediation_audit"))
}

// With its limit shared among replicas, a replica closes the connection of
// a caller over its share here, so that the caller's retry may be balanced
// to a replica with room; alone, it keeps the connection.
func TestWrite_RateLimitedCallerIsDisconnectedOnlyWhenReplicasShareTheLimit(t *testing.T) {
	for share, wantClose := range map[int]bool{1: false, 3: true} {
		h := newHarness(t, options{rate: 0.001, burst: 3, share: share})
		gw := tokenOf("gateway-sa")
		var r response
		for range 4 { // the bucket holds 3, or 1 as one of three
			if r = h.post(t, "/api/v1/audit/remediation", gw, []byte(`{"remediationRequestID":"rr-1"}`)); r.status == 429 {
				break
			}
			decodeWrite(t, r)
		}
		require.Equal(t, 429, r.status, "share %d: %s", share, r.body)
		assert.Equal(t, wantClose, r.closed, "share %d: Connection: close", share)
	}
}

func TestWrite_IdempotencyKeyGivesOneRecord(t *testing.T) {
	h := newHarness(t, options{})
	body := []byte(`{"remediationRequestID":"rr-1","alertName":"A"}`)
	first := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), body, "Idempotency-Key", "k-1"))
	again := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), body, "Idempotency-Key", "k-1"))
	assert.Equal(t, first.AuditID, again.AuditID)
	assert.Equal(t, 1, h.rows(t, "remediation_audit"))

	other := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("aianalysis-controller-sa"), body, "Idempotency-Key", "k-1"))
	assert.NotEqual(t, first.AuditID, other.AuditID, "keys are scoped by service account")
	assert.Equal(t, 2, h.rows(t, "remediation_audit"))
}

// TestWrite_AnotherWriterCanNeitherForgeNorProbeARecord: the ID of an
// Idempotency-Key write is computable by anyone (service account, kind,
// key), and a batch item's ID is the sender's choice. Another writer that
// takes the ID first stores its own record; the owner's write still stores
// the owner's content, and neither answer says anything about the other.
func TestWrite_AnotherWriterCanNeitherForgeNorProbeARecord(t *testing.T) {
	h := newHarness(t, options{})
	owner, intruder := tokenOf("gateway-sa"), tokenOf("aianalysis-controller-sa")
	id := wire.IDForKey(ns+"/gateway-sa", wire.KindRemediation, "k-next")
	forged := fmt.Sprintf(`{"records":[{"id":%q,"kind":"remediation","record":{"remediationRequestID":"rr-forged","alertName":"Forged"}}]}`, id)

	r := h.post(t, "/api/v1/audit/batch", intruder, []byte(forged))
	require.Equal(t, 200, r.status, r.body)
	assert.Contains(t, r.body, `"status":"persisted"`, "the intruder's record is its own")

	w := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", owner,
		[]byte(`{"remediationRequestID":"rr-1","alertName":"Genuine"}`), "Idempotency-Key", "k-next"))
	assert.Equal(t, id, w.AuditID)
	var alert string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT alert_name FROM remediation_audit
		WHERE id = $1 AND service_account = $2`, id, ns+"/gateway-sa").Scan(&alert))
	assert.Equal(t, "Genuine", alert, "the owner's row holds the owner's content")

	// Probing for the owner's record: the answer is the intruder's own
	// duplicate (its earlier write), never the owner's.
	r = h.post(t, "/api/v1/audit/batch", tokenOf("kubernetes-executor-sa"), []byte(forged))
	require.Equal(t, 200, r.status, r.body)
	assert.Contains(t, r.body, `"status":"persisted"`, "an ID another writer stored is not a duplicate: no existence oracle")
	assert.Equal(t, 3, h.count(t, "remediation_audit", id), "one row per writer")
}

// batchBody builds a batch of n valid records of kind, IDs left to the central.
func batchBody(t *testing.T, n int, kind wire.Kind) []byte {
	t.Helper()
	var items []string
	for i := 0; i < n; i++ {
		rec := fmt.Sprintf(`{"remediationRequestID":"rr-%d"}`, i)
		if kind == wire.KindWorkflow {
			rec = fmt.Sprintf(`{"workflowID":"wf-%d","stepName":"s","stepStatus":"completed","duration":1000000}`, i)
		}
		items = append(items, fmt.Sprintf(`{"kind":%q,"record":%s}`, kind, rec))
	}
	return []byte(`{"records":[` + strings.Join(items, ",") + `]}`)
}

func TestBatch_OutcomesPerRecordAndRetriesAreDuplicates(t *testing.T) {
	h := newHarness(t, options{})
	recs := []wire.Record{
		{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
			Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", AlertName: "HighCPU"}},
		{ID: wire.NewID(), Kind: wire.KindWorkflow, ReceivedAt: time.Now().UTC().Truncate(time.Microsecond),
			Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "drain", StepStatus: "completed"}},
	}
	// The agent forwards under its pod's service account; allow both kinds by
	// sending each kind from its writer.
	send := func(token string, b []byte, headers ...string) wire.BatchResponse {
		r := h.post(t, "/api/v1/audit/batch", token, b, headers...)
		require.Equal(t, 200, r.status, r.body)
		var resp wire.BatchResponse
		require.NoError(t, json.Unmarshal([]byte(r.body), &resp))
		return resp
	}
	rem, err := wire.EncodeBatch(recs[:1])
	require.NoError(t, err)
	wf, err := wire.EncodeBatch(recs[1:])
	require.NoError(t, err)

	got := send(tokenOf("gateway-sa"), rem)
	assert.Equal(t, wire.BatchResponse{Results: []wire.ItemResult{{ID: recs[0].ID, Status: wire.StatusPersisted}}, Persisted: 1}, got)
	got = send(tokenOf("gateway-sa"), rem)
	assert.Equal(t, wire.BatchResponse{Results: []wire.ItemResult{{ID: recs[0].ID, Status: wire.StatusDuplicate}}, Duplicates: 1}, got)
	got = send(tokenOf("workflowexecution-controller-sa"), wf)
	assert.Equal(t, 1, got.Persisted)
	assert.Equal(t, 1, h.count(t, "remediation_audit", recs[0].ID))
	assert.Equal(t, 1, h.count(t, "workflow_audit", recs[1].ID))

	t.Run("an item of a kind the caller may not write is rejected alone", func(t *testing.T) {
		fresh := wire.Record{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC(),
			Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-2"}}
		mixed, err := wire.EncodeBatch([]wire.Record{recs[1], fresh})
		require.NoError(t, err)
		got := send(tokenOf("gateway-sa"), mixed)
		require.Len(t, got.Results, 2)
		assert.Equal(t, wire.ItemResult{ID: recs[1].ID, Status: wire.StatusRejected, Error: &wire.ErrorBody{
			Error: wire.CodeAuthorizationFailed, Field: "records[0].kind",
			Message: "kubernaut-system/gateway-sa may not write workflow audits"}}, got.Results[0])
		assert.Equal(t, wire.StatusPersisted, got.Results[1].Status, "the rest of the batch is written")
		assert.Equal(t, 1, h.count(t, "workflow_audit", recs[1].ID), "the refused item wrote nothing")
	})

	t.Run("a caller that may write nothing is 403 even when every item is invalid", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/batch", outsiderToken,
			[]byte(`{"records":[{"kind":"remediation","record":{"alertName":"no id"}}]}`), invalidByDesign, "invalid item")
		require.Equal(t, 403, r.status, r.body)
		assert.JSONEq(t, `{"error":"authorization_failed","message":"Service account not authorized for write operations"}`, r.body)
	})

	t.Run("invalid items are rejected alone, with the reason", func(t *testing.T) {
		b := []byte(`{"records":[
			{"kind":"remediation","record":{"remediationRequestID":"rr-ok"}},
			{"kind":"remediation","record":{"alertName":"no id"}},
			{"kind":"remediation","record":{"remediationRequestID":"rr-2","confidence":7}}]}`)
		got := send(tokenOf("gateway-sa"), b, invalidByDesign, "invalid items")
		require.Len(t, got.Results, 3)
		assert.Equal(t, wire.StatusPersisted, got.Results[0].Status)
		assert.Regexp(t, auditIDPattern, got.Results[0].ID, "the central assigns IDs the sender left out")
		assert.Equal(t, wire.StatusRejected, got.Results[1].Status)
		assert.Equal(t, "validation_failed", got.Results[1].Error.Error)
		assert.Contains(t, got.Results[1].Error.Field, "remediationRequestID")
		assert.Equal(t, wire.StatusRejected, got.Results[2].Status)
		assert.Contains(t, got.Results[2].Error.Field, "confidence")
		assert.Equal(t, 1, got.Persisted)
		assert.Equal(t, 2, got.Rejected)
	})

	t.Run("gzip and zstd bodies", func(t *testing.T) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(batchBody(t, 3, wire.KindRemediation))
		require.NoError(t, zw.Close())
		assert.Equal(t, 3, send(tokenOf("gateway-sa"), gz.Bytes(), "Content-Encoding", "gzip").Persisted)

		enc, err := zstd.NewWriter(nil)
		require.NoError(t, err)
		zs := enc.EncodeAll(batchBody(t, 5, wire.KindRemediation), nil)
		assert.Equal(t, 5, send(tokenOf("gateway-sa"), zs, "Content-Encoding", "zstd").Persisted)
	})

	t.Run("a decompression bomb is 413", func(t *testing.T) {
		enc, err := zstd.NewWriter(nil)
		require.NoError(t, err)
		bomb := enc.EncodeAll(bytes.Repeat([]byte(" "), wire.MaxBatchBytes+1), nil)
		require.Less(t, len(bomb), 64<<10)
		r := h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"), bomb, "Content-Encoding", "zstd", invalidByDesign, "a bomb")
		require.Equal(t, 413, r.status, r.body)
	})

	t.Run("a malformed envelope is 400", func(t *testing.T) {
		r := h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"), []byte(`{"records":[`), invalidByDesign, "truncated JSON")
		require.Equal(t, 400, r.status, r.body)
		assertErrorShape(t, r.body)
	})
}

func TestWrite_ConcurrentSingleWritesShareTransactions(t *testing.T) {
	h := newHarness(t, options{inFlight: 1})
	remediationWriters := []string{"gateway-sa", "aianalysis-controller-sa", "kubernetes-executor-sa"}
	const writes = 60
	ids := make([]string, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			sa := remediationWriters[i%len(remediationWriters)]
			r := h.post(t, "/api/v1/audit/remediation", tokenOf(sa), []byte(fmt.Sprintf(`{"remediationRequestID":"rr-%d"}`, i)))
			ids[i] = decodeWrite(t, r).AuditID
		})
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, 1, h.count(t, "remediation_audit", id))
	}

	// Each row names its own caller, though several callers' requests
	// were in flight together.
	perSA := map[string]int{}
	rows, err := h.pool.Query(context.Background(), `SELECT service_account, count(*) FROM remediation_audit GROUP BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var sa string
		var n int
		require.NoError(t, rows.Scan(&sa, &n))
		perSA[sa] = n
	}
	require.NoError(t, rows.Err())
	for _, sa := range remediationWriters {
		assert.Equal(t, writes/len(remediationWriters), perSA[ns+"/"+sa], sa)
	}

	resp, err := http.Get(h.metricsURL)
	require.NoError(t, err)
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`datastorage_coalesced_batch_records_count (\d+)`).FindStringSubmatch(string(text))
	require.NotNil(t, m, "%s", text)
	batches, _ := strconv.Atoi(m[1])
	assert.Less(t, batches, writes, "concurrent writes share transactions")
}

func TestWrite_CommittedHookFollowsEachCommit(t *testing.T) {
	var commits atomic.Int64
	h := newHarness(t, options{committed: func() { commits.Add(1) }})
	decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{"remediationRequestID":"rr-1"}`)))
	assert.EqualValues(t, 1, commits.Load(), "single write")
	r := h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"), batchBody(t, 3, wire.KindRemediation))
	require.Equal(t, 200, r.status, r.body)
	assert.EqualValues(t, 2, commits.Load(), "batch write")
	h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{}`), invalidByDesign, "no remediationRequestID")
	assert.EqualValues(t, 2, commits.Load(), "nothing committed, nothing announced")
}

func TestBatch_ReceivedAtOlderThanTheBoundIsRejected(t *testing.T) {
	h := newHarness(t, options{})
	item := func(receivedAt time.Time) string {
		return fmt.Sprintf(`{"kind":"remediation","receivedAt":%q,"record":{"remediationRequestID":"rr-1"}}`, receivedAt.Format(time.RFC3339Nano))
	}
	now := time.Now()
	r := h.post(t, "/api/v1/audit/batch", tokenOf("gateway-sa"), []byte(`{"records":[`+
		item(time.Unix(0, 0))+","+item(now.Add(-central.DefaultMaxReceivedAge-time.Hour))+","+
		item(now.Add(-central.DefaultMaxReceivedAge+time.Hour))+`]}`))
	require.Equal(t, 200, r.status, r.body)
	var resp wire.BatchResponse
	require.NoError(t, json.Unmarshal([]byte(r.body), &resp))
	require.Len(t, resp.Results, 3)
	for i, want := range []wire.ItemStatus{wire.StatusRejected, wire.StatusRejected, wire.StatusPersisted} {
		assert.Equal(t, want, resp.Results[i].Status, "item %d", i)
	}
	assert.Equal(t, &wire.ErrorBody{Error: wire.CodeValidationFailed, Field: "records[0].receivedAt",
		Message: "ReceivedAt must be within the last 30 days (the central's --max-received-age)"}, resp.Results[0].Error)
}

func TestAccess_SaysWhoTheCallerIsAndWhatItMayDo(t *testing.T) {
	h := newHarness(t, options{})
	get := func(token string) response {
		req, err := http.NewRequest(http.MethodGet, h.url+"/api/v1/access", nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		} else {
			req = markInvalid(req, "no token")
		}
		return h.do(t, req)
	}
	r := get(tokenOf("aianalysis-controller-sa"))
	require.Equal(t, 200, r.status, r.body)
	assert.JSONEq(t, `{"identity":"kubernaut-system/aianalysis-controller-sa","actions":["write:remediation","read:similar","read:audit"]}`, r.body)
	r = get(outsiderToken)
	require.Equal(t, 200, r.status, r.body)
	assert.JSONEq(t, `{"identity":"kubernaut-system/outsider","actions":[]}`, r.body, "an identity that may do nothing is told so")
	assert.Equal(t, 401, get("").status)
	assert.Equal(t, 401, get("no-such-token").status)
	p := h.post(t, "/api/v1/access", tokenOf("gateway-sa"), nil, invalidByDesign, "POST")
	assert.Equal(t, 405, p.status)
	assert.Equal(t, "GET", p.header.Get("Allow"))
}
