package main_test

// Writers isolated from one another, end to end: the real agent and central.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// postTo writes one remediation audit to an agent and returns the answer.
func postTo(t *testing.T, agentAddr, path, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+agentAddr+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// rowsOf returns "service_account=remediation_request_id" for each row of id.
func rowsOf(t *testing.T, dsn, table, column, id string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT service_account || '=' || "+column+" FROM "+table+" WHERE id = $1 ORDER BY 1", id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestIntegration_AgentsWithStaticTokensNeverShareAnIDSpace: two pods whose
// tokens are not service-account JWTs derive the same ID from the same
// Idempotency-Key (they cannot tell whose they are); the central keeps each
// record as its writer's, so neither is dropped as the other's duplicate.
func TestIntegration_AgentsWithStaticTokensNeverShareAnIDSpace(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentralWith(t, dsn,
		"static-a,system:serviceaccount:kubernaut-system:gateway-sa,uid-a\n"+
			"static-b,system:serviceaccount:kubernaut-system:aianalysis-controller-sa,uid-b\n",
		"serviceAccounts:\n- name: gateway-sa\n  namespace: kubernaut-system\n  actions: [write:remediation]\n"+
			"- name: aianalysis-controller-sa\n  namespace: kubernaut-system\n  actions: [write:remediation]\n")
	var ids []string
	for _, pod := range []string{"a", "b"} {
		tok := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tok, []byte("static-"+pod), 0o600))
		a := startIntegrationAgent(t, t.TempDir(), central.url(), tok)
		status, body := postTo(t, a.listen, "/api/v1/audit/remediation",
			`{"remediationRequestID":"rr-from-`+pod+`"}`, "Idempotency-Key", "same-key")
		require.Equal(t, http.StatusCreated, status, body)
		var w wire.WriteResponse
		require.NoError(t, json.Unmarshal([]byte(body), &w))
		ids = append(ids, w.AuditID)
	}
	require.Equal(t, ids[0], ids[1], "without a JWT, both pods derive the same ID")
	want := []string{"kubernaut-system/aianalysis-controller-sa=rr-from-b", "kubernaut-system/gateway-sa=rr-from-a"}
	require.Eventually(t, func() bool {
		return len(rowsOf(t, dsn, "remediation_audit", "remediation_request_id", ids[0])) == 2
	}, 30*time.Second, 50*time.Millisecond, "both records reach PostgreSQL")
	assert.Equal(t, want, rowsOf(t, dsn, "remediation_audit", "remediation_request_id", ids[0]), "each pod's record, as its writer's")
}

// TestIntegration_RefusedKindNeverHoldsUpTheRest: a pod may write
// remediation audits only. A workflow audit it buffered before the agent
// knew goes to the dead letters with its reason while everything else
// flows; once the agent has asked the central, it refuses workflow audits
// at once with 403; after an operator grants the kind, a replay stores the
// dead letter exactly once.
func TestIntegration_RefusedKindNeverHoldsUpTheRest(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	remediationOnly := "serviceAccounts:\n- name: gateway-sa\n  namespace: kubernaut-system\n  actions: [write:remediation]\n"
	central := startCentralWith(t, dsn, tokenCSV(1), remediationOnly)
	tok := writeToken(t, 1)
	dataDir := t.TempDir()

	// An agent that never asks: it buffers the workflow audit (201).
	a := startIntegrationAgent(t, dataDir, central.url(), tok, "--access-refresh", "0")
	status, body := postTo(t, a.listen, "/api/v1/audit/workflow", `{"workflowID":"wf-refused","stepName":"s","stepStatus":"completed"}`)
	require.Equal(t, http.StatusCreated, status, body)
	var refused wire.WriteResponse
	require.NoError(t, json.Unmarshal([]byte(body), &refused))
	var flowed []string
	for i := range 5 {
		status, body := postTo(t, a.listen, "/api/v1/audit/remediation", fmt.Sprintf(`{"remediationRequestID":"rr-%d"}`, i))
		require.Equal(t, http.StatusCreated, status, body)
		var w wire.WriteResponse
		require.NoError(t, json.Unmarshal([]byte(body), &w))
		flowed = append(flowed, w.AuditID)
	}
	require.Eventually(t, func() bool {
		for _, id := range flowed {
			if len(rowsOf(t, dsn, "remediation_audit", "remediation_request_id", id)) != 1 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the records after the refused one are delivered")
	var list struct {
		Count       int `json:"count"`
		DeadLetters []struct {
			Seq    string `json:"seq"`
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"deadLetters"`
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + a.listen + "/api/v1/deadletter")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.UnmarshalRead(resp.Body, &list))
		return list.Count == 1
	}, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, refused.AuditID, list.DeadLetters[0].ID)
	assert.Contains(t, list.DeadLetters[0].Reason, "authorization_failed: kubernaut-system/gateway-sa may not write workflow audits")
	a.term(t)

	// An agent that asks refuses the kind at once, and still takes the other.
	a = startIntegrationAgent(t, dataDir, central.url(), tok)
	require.Eventually(t, func() bool {
		status, _ := postTo(t, a.listen, "/api/v1/audit/workflow", `{"workflowID":"wf-2","stepName":"s","stepStatus":"completed"}`)
		return status == http.StatusForbidden
	}, 15*time.Second, 50*time.Millisecond, "the agent learns from GET /api/v1/access")
	status, body = postTo(t, a.listen, "/api/v1/audit/workflow", `{"workflowID":"wf-2","stepName":"s","stepStatus":"completed"}`)
	require.Equal(t, http.StatusForbidden, status)
	assert.JSONEq(t, `{"error":"authorization_failed","message":"kubernaut-system/gateway-sa may not write workflow audits"}`, body)
	status, _ = postTo(t, a.listen, "/api/v1/audit/remediation", `{"remediationRequestID":"rr-after"}`)
	require.Equal(t, http.StatusCreated, status)

	// The operator grants the kind, then replays the dead letter.
	central.stop(t, syscall.SIGTERM)
	require.NoError(t, os.WriteFile(central.authz, []byte(bothKinds), 0o600))
	central.start(t)
	req, err := http.NewRequest(http.MethodPost, "http://"+a.listen+"/api/v1/deadletter/replay?through="+list.DeadLetters[0].Seq, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	replay, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", replay)
	assert.JSONEq(t, `{"replayed":1,"skipped":0}`, string(replay))
	require.Eventually(t, func() bool {
		return len(rowsOf(t, dsn, "workflow_audit", "workflow_id", refused.AuditID)) == 1
	}, 30*time.Second, 50*time.Millisecond, "the replayed record is stored")
	assert.Equal(t, []string{"kubernaut-system/gateway-sa=wf-refused"}, rowsOf(t, dsn, "workflow_audit", "workflow_id", refused.AuditID))
	// Replaying again finds nothing: exactly once.
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	replay, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.JSONEq(t, `{"replayed":0,"skipped":0}`, string(replay))
}
