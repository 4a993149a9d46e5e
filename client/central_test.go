package client_test

// Against the real central: cmd/central built and run as a process with a
// fresh pgtest database and static tokens.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/wire"
)

// TestMain removes the central binary built for these tests.
func TestMain(m *testing.M) { harness.Main(m) }

// startCentral runs the central with tokens "t-gw" (gateway-sa: remediation),
// "t-wf" (workflowexecution-controller-sa: workflow), "t-ai"
// (aianalysis-controller-sa: remediation, read:audit) and "t-legal"
// (compliance-sa: nothing unless an --authz-file grants it) and extra
// flags, and returns its URL and database.
func startCentral(t *testing.T, extra ...string) (url, dsn string) {
	t.Helper()
	dsn = pgtest.NewDatabase(t)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	require.NoError(t, os.WriteFile(tokens, []byte(
		"t-gw,system:serviceaccount:kubernaut-system:gateway-sa,uid-1,\"system:serviceaccounts\"\n"+
			"t-wf,system:serviceaccount:kubernaut-system:workflowexecution-controller-sa,uid-2,\"system:serviceaccounts\"\n"+
			"t-ai,system:serviceaccount:kubernaut-system:aianalysis-controller-sa,uid-3,\"system:serviceaccounts\"\n"+
			"t-legal,system:serviceaccount:kubernaut-system:compliance-sa,uid-4,\"system:serviceaccounts\"\n"), 0o600))
	api := freeport.Addr(t)
	url = "http://" + api
	harness.StartTB(t, harness.Command{Name: "central", Path: harness.BuildOnce(t).Central,
		Args: append([]string{"serve", "--listen", api, "--metrics-listen", freeport.Addr(t),
			"--auth", "static", "--token-file", tokens, "--rate-limit", "100000", "--log-level", "warn"}, extra...),
		Env: []string{"DATABASE_URL=" + dsn}, Ready: url + "/readyz", ReadyWithin: 30 * time.Second})
	return url, dsn
}

func rowsWithID(t *testing.T, dsn, table, id string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = $1", id).Scan(&n))
	return n
}

func TestAgainstCentral_WritesEachKindAndRetriesMakeNoSecondRecord(t *testing.T) {
	url, dsn := startCentral(t)
	gw := newClient(t, client.Config{BaseURL: url, Token: "t-gw"})
	wf := newClient(t, client.Config{BaseURL: url, Token: "t-wf"})
	ctx := context.Background()

	got, err := gw.WriteRemediationAudit(ctx, gatewayAudit())
	require.NoError(t, err)
	assert.Equal(t, "persisted", got.Status)
	assert.Equal(t, 1, rowsWithID(t, dsn, "remediation_audit", got.AuditID))

	// The same logical write sent twice (as a retry would) is one record.
	keyed := client.WithIdempotencyKey(ctx, "gw-write-42")
	first, err := gw.WriteRemediationAudit(keyed, gatewayAudit())
	require.NoError(t, err)
	again, err := gw.WriteRemediationAudit(keyed, gatewayAudit())
	require.NoError(t, err)
	assert.Equal(t, first.AuditID, again.AuditID)
	assert.Equal(t, wire.IDForKey("kubernaut-system/gateway-sa", wire.KindRemediation, "gw-write-42"), first.AuditID)
	assert.Equal(t, 1, rowsWithID(t, dsn, "remediation_audit", first.AuditID))

	d := int64(1500 * time.Millisecond)
	step, err := wf.WriteWorkflowAudit(ctx, &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "scale-deployment",
		StepStatus: "completed", DurationNanos: &d})
	require.NoError(t, err)
	assert.Equal(t, 1, rowsWithID(t, dsn, "workflow_audit", step.AuditID))
}

func TestAgainstCentral_BatchIsIdempotent(t *testing.T) {
	url, dsn := startCentral(t)
	gw := newClient(t, client.Config{BaseURL: url, Token: "t-gw"})
	ctx := context.Background()
	recs := []wire.Record{
		{ID: wire.NewID(), Kind: wire.KindRemediation, Remediation: gatewayAudit()},
		{ID: wire.NewID(), Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-2", ActionType: "restart-pod"}},
	}
	got, err := gw.WriteBatch(ctx, recs)
	require.NoError(t, err)
	assert.Equal(t, 2, got.Persisted)
	again, err := gw.WriteBatch(ctx, recs)
	require.NoError(t, err)
	assert.Equal(t, 2, again.Duplicates)
	for _, r := range recs {
		assert.Equal(t, 1, rowsWithID(t, dsn, "remediation_audit", r.ID))
	}
}

func TestAgainstCentral_ErrorsCarryTheServersBody(t *testing.T) {
	url, _ := startCentral(t)
	ctx := context.Background()

	gw := newClient(t, client.Config{BaseURL: url, Token: "t-gw"})
	_, err := gw.WriteRemediationAudit(ctx, &wire.RemediationAudit{AlertName: "NoRequestID"})
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "remediationRequestID", apiErr.Body.Field)
	assert.Equal(t, 1, apiErr.Attempts)

	bad := newClient(t, client.Config{BaseURL: url, Token: "wrong"})
	_, err = bad.WriteRemediationAudit(ctx, gatewayAudit())
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.Equal(t, wire.CodeAuthenticationFailed, apiErr.Body.Error)

	// gateway-sa may not write workflow audits.
	_, err = gw.WriteWorkflowAudit(ctx, &wire.WorkflowAudit{WorkflowID: "wf", StepName: "s", StepStatus: "completed"})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 403, apiErr.StatusCode)
}
