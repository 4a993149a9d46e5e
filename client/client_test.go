package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/wire"
)

// seen is one request as the fake server received it.
type seen struct {
	path, key, auth string
	body            []byte
}

// fakeServer answers the i-th request (0-based) with answers[i] (the last
// one repeats) and records every request.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

type answer func(w http.ResponseWriter, r *http.Request)

func newFakeServer(t *testing.T, answers ...answer) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		i := len(f.reqs)
		f.reqs = append(f.reqs, seen{path: r.URL.Path, key: r.Header.Get("Idempotency-Key"),
			auth: r.Header.Get("Authorization"), body: body})
		f.mu.Unlock()
		answers[min(i, len(answers)-1)](w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func status(code int, body string, headers ...string) answer {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func created(id string) answer {
	return status(http.StatusCreated, `{"auditID":"`+id+`","status":"persisted"}`)
}

// reset closes the connection without an answer, as a crashed server would.
func reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	c, err := client.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func gatewayAudit() *wire.RemediationAudit {
	return &wire.RemediationAudit{RemediationRequestID: "rr-abc123", AlertName: "HighMemoryUsage",
		Namespace: "production", Cluster: "us-west-2", Priority: "P0"}
}

func TestWrite_RetriesATransientFailureWithTheSameIdempotencyKey(t *testing.T) {
	for name, first := range map[string]answer{
		"connection reset": reset,
		"500":              status(500, `{"error":"internal_error","message":"Failed to persist audit trail","correlation_id":"req-1"}`),
		"503":              status(503, `{"error":"service_unavailable","message":"PostgreSQL connection failed"}`, "Retry-After", "0"),
	} {
		t.Run(name, func(t *testing.T) {
			srv := newFakeServer(t, first, created("audit-1"))
			c := newClient(t, client.Config{BaseURL: srv.URL, Token: "tok"})

			got, err := c.WriteRemediationAudit(context.Background(), gatewayAudit())
			require.NoError(t, err)
			assert.Equal(t, "audit-1", got.AuditID)

			reqs := srv.requests()
			require.Len(t, reqs, 2)
			assert.NotEmpty(t, reqs[0].key)
			assert.Equal(t, reqs[0].key, reqs[1].key, "a retry reuses the write's Idempotency-Key")
			assert.Equal(t, reqs[0].body, reqs[1].body)
			assert.Equal(t, "/api/v1/audit/remediation", reqs[1].path)
			assert.Equal(t, "Bearer tok", reqs[1].auth)
		})
	}
}

func TestWrite_HonoursRetryAfterOn429(t *testing.T) {
	srv := newFakeServer(t,
		status(429, `{"error":"rate_limit_exceeded","message":"Too many requests"}`, "Retry-After", "1"),
		created("audit-2"))
	c := newClient(t, client.Config{BaseURL: srv.URL, Backoff: time.Millisecond})

	start := time.Now()
	_, err := c.WriteWorkflowAudit(context.Background(), &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "scale", StepStatus: "completed"})
	require.NoError(t, err)
	// Backoff alone would have waited about a millisecond.
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After: 1 was not honoured")
	reqs := srv.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, reqs[0].key, reqs[1].key)
	assert.Equal(t, "/api/v1/audit/workflow", reqs[0].path)
}

func TestWrite_DoesNotRetryAValidationErrorAndExposesTheField(t *testing.T) {
	srv := newFakeServer(t, status(400, `{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`))
	c := newClient(t, client.Config{BaseURL: srv.URL})

	_, err := c.WriteRemediationAudit(context.Background(), &wire.RemediationAudit{})
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "validation_failed", apiErr.Body.Error)
	assert.Equal(t, "remediationRequestID", apiErr.Body.Field)
	assert.False(t, apiErr.Retryable())
	assert.Len(t, srv.requests(), 1, "a 400 is final")
}

func TestWrite_GivesUpAfterMaxRetriesWithTheLastAnswer(t *testing.T) {
	srv := newFakeServer(t, status(503, `{"error":"service_unavailable","message":"down"}`))
	c := newClient(t, client.Config{BaseURL: srv.URL, MaxRetries: 2})

	_, err := c.WriteRemediationAudit(context.Background(), gatewayAudit())
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 503, apiErr.StatusCode)
	assert.Equal(t, 3, apiErr.Attempts)
	assert.Len(t, srv.requests(), 3)
}

func TestWrite_NegativeMaxRetriesSendsOnce(t *testing.T) {
	srv := newFakeServer(t, status(500, `{"error":"internal_error","message":"x"}`))
	c := newClient(t, client.Config{BaseURL: srv.URL, MaxRetries: -1})
	_, err := c.WriteRemediationAudit(context.Background(), gatewayAudit())
	require.Error(t, err)
	assert.Len(t, srv.requests(), 1)
}

func TestWrite_StopsRetryingWhenTheContextEnds(t *testing.T) {
	srv := newFakeServer(t, status(503, `{"error":"service_unavailable","message":"down"}`, "Retry-After", "30"))
	c := newClient(t, client.Config{BaseURL: srv.URL, MaxBackoff: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	_, err := c.WriteRemediationAudit(ctx, gatewayAudit())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Len(t, srv.requests(), 1)
}

func TestWrite_EachLogicalWriteHasItsOwnKeyUnlessTheCallerGivesOne(t *testing.T) {
	srv := newFakeServer(t, created("audit-3"))
	c := newClient(t, client.Config{BaseURL: srv.URL})
	ctx := context.Background()
	for range 2 {
		_, err := c.WriteRemediationAudit(ctx, gatewayAudit())
		require.NoError(t, err)
	}
	_, err := c.WriteRemediationAudit(client.WithIdempotencyKey(ctx, "my-key"), gatewayAudit())
	require.NoError(t, err)
	reqs := srv.requests()
	require.Len(t, reqs, 3)
	assert.NotEqual(t, reqs[0].key, reqs[1].key)
	assert.Equal(t, "my-key", reqs[2].key)
}

func TestWrite_ANonJSONErrorStillYieldsAnAPIError(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "forbidden by proxy")
	})
	c := newClient(t, client.Config{BaseURL: srv.URL})
	_, err := c.WriteRemediationAudit(context.Background(), gatewayAudit())
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, wire.CodeAuthorizationFailed, apiErr.Body.Error)
	assert.Equal(t, "forbidden by proxy", apiErr.Body.Message)
}

func TestTokenFile_IsReReadWhenRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("first\n"), 0o600))
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer stale" {
			status(401, `{"error":"authentication_failed","message":"Token validation failed"}`)(w, r)
			return
		}
		created("audit-4")(w, r)
	})
	c := newClient(t, client.Config{BaseURL: srv.URL, TokenFile: path})
	ctx := context.Background()

	_, err := c.WriteRemediationAudit(ctx, gatewayAudit())
	require.NoError(t, err)
	// The kubelet writes a new file and renames it over the old one.
	rotate := func(tok string) {
		tmp := path + ".new"
		require.NoError(t, os.WriteFile(tmp, []byte(tok), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	rotate("second-token")
	_, err = c.WriteRemediationAudit(ctx, gatewayAudit())
	require.NoError(t, err)
	reqs := srv.requests()
	assert.Equal(t, "Bearer first", reqs[0].auth)
	assert.Equal(t, "Bearer second-token", reqs[1].auth)

	rotate("stale")
	_, err = c.WriteRemediationAudit(ctx, gatewayAudit())
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.Len(t, srv.requests(), 4, "a 401 re-reads the token file and tries once more, then stops")
}

func TestWriteBatch_AssignsIDsOnceSoARetryCarriesTheSameIDs(t *testing.T) {
	srv := newFakeServer(t, reset, func(w http.ResponseWriter, r *http.Request) {
		status(200, `{"results":[{"id":"x","status":"persisted"},{"id":"y","status":"persisted"}],"persisted":2,"duplicates":0,"rejected":0}`)(w, r)
	})
	c := newClient(t, client.Config{BaseURL: srv.URL})
	recs := []wire.Record{
		{Kind: wire.KindRemediation, Remediation: gatewayAudit()},
		{ID: "audit-given", Kind: wire.KindWorkflow, Workflow: &wire.WorkflowAudit{WorkflowID: "wf", StepName: "s", StepStatus: "completed"}},
	}
	got, err := c.WriteBatch(context.Background(), recs)
	require.NoError(t, err)
	assert.Equal(t, 2, got.Persisted)
	assert.Empty(t, recs[0].ID, "the caller's slice is not modified")

	reqs := srv.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/api/v1/audit/batch", reqs[0].path)
	assert.Equal(t, reqs[0].body, reqs[1].body, "the retry resends the same IDs")
	var sent struct {
		Records []struct {
			ID string `json:"id"`
		} `json:"records"`
	}
	require.NoError(t, json.Unmarshal(reqs[0].body, &sent, json.RejectUnknownMembers(false)))
	require.Len(t, sent.Records, 2)
	assert.Regexp(t, `^audit-`, sent.Records[0].ID)
	assert.Equal(t, "audit-given", sent.Records[1].ID)
}

func TestNew_RejectsBadConfiguration(t *testing.T) {
	for name, cfg := range map[string]client.Config{
		"no base URL":        {},
		"not a URL":          {BaseURL: "localhost:8080"},
		"both token sources": {BaseURL: "http://x", Token: "a", TokenFile: "/b"},
		"negative timeout":   {BaseURL: "http://x", Timeout: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := client.New(cfg)
			require.Error(t, err)
		})
	}
	_, err := client.New(client.Config{BaseURL: "http://127.0.0.1:18080"})
	require.NoError(t, err)
}
