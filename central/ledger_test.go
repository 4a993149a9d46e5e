package central_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/ledger"
)

const pathVerify = "/api/v1/ledger/verify"

// auditorAuthz is the default writers, and holderSA allowed to verify the
// ledger.
func auditorAuthz(t testing.TB) *authz.AllowList {
	t.Helper()
	a, err := authz.Parse([]byte(`serviceAccounts:
- {name: gateway-sa, namespace: ` + ns + `, actions: [write:remediation]}
- {name: workflowexecution-controller-sa, namespace: ` + ns + `, actions: [write:workflow]}
- {name: ` + holderSA + `, namespace: ` + ns + `, actions: [verify:ledger]}
`))
	require.NoError(t, err)
	return a
}

// verified asks for a verification and decodes the 200 answer.
func (h *harness) verified(t *testing.T, query string) central.VerifyAnswer {
	t.Helper()
	r := h.get(t, pathVerify+query, tokenOf(holderSA))
	require.Equal(t, 200, r.status, r.body)
	var a central.VerifyAnswer
	require.NoError(t, json.Unmarshal([]byte(r.body), &a))
	return a
}

func (h *harness) sequence(t *testing.T) {
	t.Helper()
	_, _, err := h.db.SequenceLedger(context.Background())
	require.NoError(t, err)
}

func TestLedgerVerify_AnswersTheReportAndTheFirstFailure(t *testing.T) {
	h := newHarness(t, options{authz: auditorAuthz(t)})
	var ids []string
	for i := range 5 {
		ids = append(ids, h.writeAt(t, "gateway-sa", "rr-1", "prod-1", time.Duration(i)*time.Second))
	}
	h.sequence(t)
	a := h.verified(t, "")
	require.True(t, a.OK, "%+v", a.Failures)
	assert.Nil(t, a.FirstFailure)
	assert.EqualValues(t, 5, a.Rows)
	assert.EqualValues(t, 5, a.HeadSeq, "one entry per write")

	// Someone with the database deletes a row behind the central's back.
	conn, err := h.pool.Acquire(context.Background())
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(context.Background(), "SET session_replication_role = replica")
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "DELETE FROM remediation_audit WHERE id = $1", ids[2])
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "RESET session_replication_role")
	require.NoError(t, err)

	a = h.verified(t, "")
	require.False(t, a.OK)
	require.NotNil(t, a.FirstFailure)
	assert.Equal(t, ledger.ProblemDeleted, a.FirstFailure.Problem)
	assert.Equal(t, ids[2], a.FirstFailure.Record)
	assert.EqualValues(t, 3, a.FirstFailure.Seq)
	assert.Equal(t, 1, a.FailuresTotal)

	a = h.verified(t, "?from=4&through=5")
	assert.True(t, a.OK, "entries 4 and 5 are whole")
	assert.EqualValues(t, 2, a.Entries)
	assert.Contains(t, h.logs.String(), `"message":"ledger verified"`)
}

func TestLedgerVerify_HoldsTheChainAgainstTheCheckpoints(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	var (
		mu  sync.Mutex
		cps []ledger.Checkpoint
	)
	h := newHarness(t, options{authz: auditorAuthz(t), checkpoints: func(context.Context) ([]ledger.Checkpoint, error) {
		mu.Lock()
		defer mu.Unlock()
		return cps, nil
	}})
	h.writeAt(t, "gateway-sa", "rr-1", "prod-1", 0)
	h.sequence(t)
	mu.Lock()
	// A checkpoint of an entry the ledger does not have: it was cut off.
	cps = []ledger.Checkpoint{ledger.Sign(key, 7, ledger.Hash{1}, time.Now())}
	mu.Unlock()
	a := h.verified(t, "")
	require.False(t, a.OK)
	assert.Equal(t, ledger.ProblemTruncated, a.FirstFailure.Problem)
	assert.EqualValues(t, 7, a.FirstFailure.Seq)
	assert.Equal(t, 1, a.Checkpoints)
}

func TestLedgerVerify_IsForTheVerifyLedgerActionOnly(t *testing.T) {
	h := newHarness(t, options{authz: auditorAuthz(t)})
	r := h.get(t, pathVerify, tokenOf("gateway-sa"))
	assert.Equal(t, 403, r.status)
	assert.JSONEq(t, `{"error":"authorization_failed","message":"Service account not authorized to verify the ledger"}`, r.body)
	r = h.get(t, pathVerify, "", invalidByDesign, "no token")
	assert.Equal(t, 401, r.status)
	for _, q := range []string{"?from=x", "?from=-1", "?since=2026-01-01T00:00:00Z"} {
		r = h.get(t, pathVerify+q, tokenOf(holderSA), invalidByDesign, "a bad query")
		assert.Equal(t, 400, r.status, q)
	}
	r = h.get(t, pathVerify+"?from=5&through=2", tokenOf(holderSA))
	assert.Equal(t, 400, r.status, "a range that ends before it starts")
	assert.Contains(t, r.body, "through must not be before from")
}

func TestLedgerVerify_OneAtATimePerReplica(t *testing.T) {
	h := newHarness(t, options{authz: auditorAuthz(t)})
	h.writeAt(t, "gateway-sa", "rr-1", "prod-1", 0)
	h.sequence(t)
	// A lock that holds the first verification at its start.
	tx, err := h.pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), "LOCK TABLE workflow_audit IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	first := make(chan response, 1)
	go func() { first <- h.get(t, pathVerify, tokenOf(holderSA)) }()
	require.Eventually(t, func() bool {
		var waiting bool
		_ = h.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE remediation_audit%')`).Scan(&waiting)
		return waiting
	}, 10*time.Second, 20*time.Millisecond)
	r := h.get(t, pathVerify, tokenOf(holderSA))
	assert.Equal(t, 409, r.status)
	assert.Contains(t, r.body, "already running")
	require.NoError(t, tx.Rollback(context.Background()))
	assert.Equal(t, 200, (<-first).status)
}

func TestLedgerVerify_DatabaseTroubleIs503Or500(t *testing.T) {
	h := newHarness(t, options{authz: auditorAuthz(t), viaProxy: true, storeTime: 3 * time.Second})
	h.proxy.SetDown(true)
	r := h.get(t, pathVerify, tokenOf(holderSA))
	assert.Equal(t, 503, r.status, r.body)
	h.proxy.SetDown(false)

	_, err := h.pool.Exec(context.Background(), "ALTER TABLE audit_ledger RENAME TO audit_ledger_gone")
	require.NoError(t, err)
	r = h.get(t, pathVerify, tokenOf(holderSA))
	assert.Equal(t, 500, r.status, r.body)
}

func TestExport_CarriesItsLedgerProof(t *testing.T) {
	keys := newExportKey(t)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	h := newHarness(t, options{exportKey: keys.private, authz: exporter(t), proofKey: key})
	for i := range 5 {
		h.writeAt(t, "gateway-sa", "rr-p", "prod-1", time.Duration(i)*time.Second)
	}
	h.batch(t, "workflowexecution-controller-sa",
		item("wf-p", "workflow", `{"workflowID":"wf-p","stepName":"drain","stepStatus":"completed"}`))

	r := h.get(t, "/api/v1/audit/export", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	tr, err := verify(t, []byte(r.body), keys.public)
	require.NoError(t, err)
	assert.Equal(t, export.FormatWithProof, tr.Format)
	assert.EqualValues(t, 6, tr.Records)
	assert.EqualValues(t, 1+6+1, tr.Proofs, "the start, the six entries, the checkpoint")
	p, err := ledger.VerifyExportProof(strings.NewReader(r.body), pub)
	require.NoError(t, err)
	assert.EqualValues(t, 6, p.Records)
	assert.EqualValues(t, 6, p.Checkpoint.Seq)

	// A range with no record has nothing to prove: format v1.
	r = h.get(t, "/api/v1/audit/export?until=2000-01-01T00:00:00Z", tokenOf(reader))
	require.Equal(t, 200, r.status, r.body)
	tr, err = verify(t, []byte(r.body), keys.public)
	require.NoError(t, err)
	assert.Equal(t, export.Format, tr.Format)
}
