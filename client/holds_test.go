package client_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/wire"
)

func TestAgainstCentral_PlacesListsReadsAndReleasesLegalHolds(t *testing.T) {
	allow := filepath.Join(t.TempDir(), "authz.yaml")
	require.NoError(t, os.WriteFile(allow, []byte(`serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: compliance-sa, namespace: kubernaut-system, actions: [hold:audit]}
`), 0o600))
	url, dsn := startCentral(t, "--authz-file", allow)
	legal := newClient(t, client.Config{BaseURL: url, Token: "t-legal"})
	gw := newClient(t, client.Config{BaseURL: url, Token: "t-gw"})
	ctx := context.Background()

	a := gatewayAudit()
	a.RemediationRequestID = "rr-held"
	_, err := gw.WriteRemediationAudit(ctx, a)
	require.NoError(t, err)

	keyed := client.WithIdempotencyKey(ctx, "hold-rr-held")
	rem, err := legal.PlaceHold(keyed, wire.PlaceHoldRequest{RemediationRequestID: "rr-held", Reason: "litigation 2026-117"})
	require.NoError(t, err)
	assert.Equal(t, "kubernaut-system/compliance-sa", rem.PlacedBy)
	assert.True(t, rem.Active)
	again, err := legal.PlaceHold(keyed, wire.PlaceHoldRequest{RemediationRequestID: "rr-held", Reason: "litigation 2026-117"})
	require.NoError(t, err)
	assert.Equal(t, rem.ID, again.ID, "the same key places one hold")
	wf, err := legal.PlaceHold(ctx, wire.PlaceHoldRequest{WorkflowID: "wf-not-yet-run", Reason: "regulator's request"})
	require.NoError(t, err)
	assert.Equal(t, "wf-not-yet-run", wf.WorkflowID)

	// The database keeps the held audit, whoever asks.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DELETE FROM remediation_audit WHERE remediation_request_id = 'rr-held'")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "LH001", pgErr.Code, "the guard of storage migration 0008")

	got, err := legal.Hold(ctx, rem.ID)
	require.NoError(t, err)
	assert.Equal(t, rem, got)

	var ids []string
	for h, err := range legal.Holds(ctx, client.HoldQuery{PageSize: 1}) {
		require.NoError(t, err)
		ids = append(ids, h.ID)
	}
	assert.Equal(t, []string{rem.ID, wf.ID}, ids, "across pages of one, in the order placed")

	released, err := legal.ReleaseHold(ctx, wf.ID, "request withdrawn")
	require.NoError(t, err)
	assert.False(t, released.Active)
	assert.Equal(t, "kubernaut-system/compliance-sa", released.ReleasedBy)
	assert.Equal(t, "request withdrawn", released.ReleaseReason)
	require.NotNil(t, released.ReleasedAt)

	active := true
	ids = ids[:0]
	for h, err := range legal.Holds(ctx, client.HoldQuery{Active: &active}) {
		require.NoError(t, err)
		ids = append(ids, h.ID)
	}
	assert.Equal(t, []string{rem.ID}, ids)

	// Errors are the server's, typed.
	var apiErr *client.APIError
	_, err = legal.ReleaseHold(ctx, wf.ID, "again")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 409, apiErr.StatusCode)
	assert.Equal(t, wire.CodeConflict, apiErr.Body.Error)
	_, err = legal.Hold(ctx, "hold-none")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 404, apiErr.StatusCode)
	_, err = legal.PlaceHold(ctx, wire.PlaceHoldRequest{RemediationRequestID: "rr-1", WorkflowID: "wf-1", Reason: "r"})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "workflowID", apiErr.Body.Field)
	_, err = legal.ReleaseHold(ctx, rem.ID, "")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "reason", apiErr.Body.Field)
	_, err = gw.PlaceHold(ctx, wire.PlaceHoldRequest{RemediationRequestID: "rr-held", Reason: "r"})
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 403, apiErr.StatusCode)
	for _, err := range gw.Holds(ctx, client.HoldQuery{}) {
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 403, apiErr.StatusCode)
	}
}
