package central_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/auth"
)

func TestFailure_InternalErrorCarriesTheLoggedCorrelationID(t *testing.T) {
	h := newHarness(t, options{})
	// A schema the central does not expect: a failure that is not the
	// database being down, so it must be a 500.
	_, err := h.pool.Exec(context.Background(), "ALTER TABLE workflow_audit RENAME TO workflow_audit_gone")
	require.NoError(t, err)

	r := h.post(t, "/api/v1/audit/workflow", tokenOf("workflowexecution-controller-sa"),
		[]byte(`{"workflowID":"wf-1","stepName":"s","stepStatus":"completed"}`))
	require.Equal(t, 500, r.status, r.body)
	var body map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.body), &body))
	assert.Equal(t, "internal_error", body["error"])
	assert.Equal(t, "Failed to persist audit trail", body["message"])
	require.Regexp(t, `^req-[0-9a-f]{16}$`, body["correlation_id"])
	assert.Equal(t, body["correlation_id"], r.header.Get("X-Correlation-ID"))
	assert.Contains(t, h.logs.String(), `"correlation_id":"`+body["correlation_id"]+`"`, "the log line carries the same ID")
	assert.NotContains(t, h.logs.String(), tokenOf("workflowexecution-controller-sa"), "tokens are never logged")
}

func TestFailure_DatabaseGoneIs503ThenRecoversWithoutRestart(t *testing.T) {
	h := newHarness(t, options{viaProxy: true, storeTime: 3 * time.Second})
	gw := tokenOf("gateway-sa")
	body := []byte(`{"remediationRequestID":"rr-1"}`)
	decodeWrite(t, h.post(t, "/api/v1/audit/remediation", gw, body))

	h.proxy.SetDown(true)
	r := h.post(t, "/api/v1/audit/remediation", gw, body)
	require.Equal(t, 503, r.status, r.body)
	assert.JSONEq(t, `{"error":"service_unavailable","message":"PostgreSQL connection failed"}`, r.body)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	// The metrics port answers the probes as the API port does (a central
	// requiring client certificates is probed there).
	probe := func(base, path string) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	metricsPort := strings.TrimSuffix(h.metricsURL, "/metrics")
	for _, base := range []string{h.url, metricsPort} {
		assert.Equal(t, 503, probe(base, "/readyz"), "%s: not ready while the database is gone", base)
		assert.Equal(t, 200, probe(base, "/healthz"), "%s: alive", base)
	}

	h.proxy.SetDown(false)
	require.Eventually(t, func() bool {
		return h.post(t, "/api/v1/audit/remediation", gw, body).status == 201
	}, 10*time.Second, 100*time.Millisecond)
	for _, base := range []string{h.url, metricsPort} {
		assert.Equal(t, 200, probe(base, "/readyz"), base)
	}
	assert.Equal(t, 2, h.rows(t, "remediation_audit"))
}

// TestFailure_ReadOnlyStandbyIs503ThenRecoversWithoutRestart: during a
// failover the node a connection reaches may be a standby, or a primary
// being demoted, which refuses writes with read_only_sql_transaction
// (25006). That is the database being unavailable for writes, a 503 with
// Retry-After that the agents retry, never a 500; once writes are accepted
// again the same central stores the retried record.
func TestFailure_ReadOnlyStandbyIs503ThenRecoversWithoutRestart(t *testing.T) {
	h := newHarness(t, options{})
	ctx := context.Background()
	gw := tokenOf("gateway-sa")
	body := []byte(`{"remediationRequestID":"rr-1"}`)
	decodeWrite(t, h.post(t, "/api/v1/audit/remediation", gw, body))

	readOnly := func(on bool) {
		t.Helper()
		_, err := h.pool.Exec(ctx, fmt.Sprintf(`BEGIN READ WRITE; DO $$ BEGIN
			EXECUTE format('ALTER DATABASE %%I SET default_transaction_read_only = %v', current_database()); END $$; COMMIT`, on))
		require.NoError(t, err)
		if !on {
			// Not terminated: the central must have dropped by itself
			// every connection that met the read-only server.
			return
		}
		// Sessions read the setting when they start: end the central's.
		_, err = h.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		require.NoError(t, err)
	}
	readOnly(true)
	var r response
	require.Eventually(t, func() bool {
		r = h.post(t, "/api/v1/audit/remediation", gw, body)
		return r.status != 201
	}, 10*time.Second, 50*time.Millisecond)
	// A connection the termination left half-dead may answer first with a
	// lost connection: 503 as well. Then the read-only server's 25006.
	for range 3 {
		require.Equal(t, 503, r.status, r.body)
		assert.JSONEq(t, `{"error":"service_unavailable","message":"PostgreSQL connection failed"}`, r.body)
		assert.Equal(t, "1", r.header.Get("Retry-After"))
		r = h.post(t, "/api/v1/audit/remediation", gw, body)
	}
	assert.Contains(t, h.logs.String(), "25006", "the cause is logged: a read-only transaction")
	assert.NotContains(t, h.logs.String(), `"status":500`)

	readOnly(false)
	require.Eventually(t, func() bool {
		return h.post(t, "/api/v1/audit/remediation", gw, body).status == 201
	}, 10*time.Second, 100*time.Millisecond, "the read-only connections were discarded")
	assert.Equal(t, 2, h.rows(t, "remediation_audit"))
}

// downAuthenticator stands for a TokenReview API that cannot be reached;
// the TokenReview client itself is tested against a real clientset in auth.
type downAuthenticator struct{}

func (downAuthenticator) Authenticate(context.Context, string, netip.Addr) (auth.Identity, error) {
	return auth.Identity{}, auth.ErrUnavailable
}

// peerRecorder remembers the peer each token came from and knows no token.
type peerRecorder struct{ peers chan netip.Addr }

func (p peerRecorder) Authenticate(_ context.Context, _ string, peer netip.Addr) (auth.Identity, error) {
	p.peers <- peer
	return auth.Identity{}, auth.ErrUnauthenticated
}

func TestAuth_AuthenticatorIsToldTheTCPPeer(t *testing.T) {
	rec := peerRecorder{peers: make(chan netip.Addr, 1)}
	h := newHarness(t, options{authn: rec})
	r := h.post(t, "/api/v1/audit/remediation", "some-token", []byte(`{"remediationRequestID":"rr-1"}`))
	require.Equal(t, 401, r.status, r.body)
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), <-rec.peers, "an IPv4 peer, unmapped")
}

// throttledAuthenticator stands for a TokenReview that refuses to review
// more failed tokens from the caller's address for now.
type throttledAuthenticator struct{ retryAfter time.Duration }

func (a throttledAuthenticator) Authenticate(_ context.Context, _ string, peer netip.Addr) (auth.Identity, error) {
	return auth.Identity{}, fmt.Errorf("authenticate: %w", &auth.ThrottledError{Peer: peer, RetryAfter: a.retryAfter})
}

func TestAuth_PeerOverItsFailedReviewBudgetGets429WithRetryAfter(t *testing.T) {
	h := newHarness(t, options{authn: throttledAuthenticator{retryAfter: 1500 * time.Millisecond}})
	r := h.post(t, "/api/v1/audit/remediation", "some-token", []byte(`{"remediationRequestID":"rr-1"}`))
	require.Equal(t, 429, r.status, r.body)
	assertErrorShape(t, r.body)
	assert.Contains(t, r.body, `"error":"rate_limit_exceeded"`)
	assert.Contains(t, r.body, "failed authentications")
	assert.Equal(t, "2", r.header.Get("Retry-After"), "rounded up to whole seconds")
}

func TestFailure_TokenReviewUnreachableIs503Not401(t *testing.T) {
	h := newHarness(t, options{authn: downAuthenticator{}})
	r := h.post(t, "/api/v1/audit/remediation", "some-token", []byte(`{"remediationRequestID":"rr-1"}`))
	require.Equal(t, 503, r.status, r.body)
	assertErrorShape(t, r.body)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
}

func TestMetrics_CountRecordsByKindAndOutcome(t *testing.T) {
	h := newHarness(t, options{})
	decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{"remediationRequestID":"rr-1"}`)))
	h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{}`), invalidByDesign, "no remediationRequestID")

	resp, err := http.Get(h.metricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, `datastorage_records_total{kind="remediation",outcome="persisted"} 1`)
	assert.Contains(t, text, `datastorage_records_total{kind="remediation",outcome="rejected"} 1`)
	assert.Contains(t, text, `datastorage_http_requests_total{endpoint="remediation",code="201"} 1`)
	assert.Contains(t, text, `datastorage_http_requests_total{endpoint="remediation",code="400"} 1`)
}
