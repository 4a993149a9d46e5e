package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/tstest/hostile"
)

// TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsBuffered runs the
// table the central runs too (internal/tstest/hostile), with the agent's own
// expectations: no token rows, no batch endpoint, no compressed bodies.
func TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsBuffered(t *testing.T) {
	q, base := start(t, queue.Config{})
	ran := hostile.Run(t, base, hostile.Agent, nil)
	assert.GreaterOrEqual(t, ran, 34, "every row but the central's token rows")
	assert.Zero(t, q.Depth().Records, "a hostile request was buffered")
	assertAgentHealthy(t, q, base)
}

func TestHostile_AgentAnswersHugeHeadersWith431(t *testing.T) {
	q, base := start(t, queue.Config{})
	status, body := hostile.HugeHeaders(t, base+"/api/v1/audit/remediation", nil)
	require.Equal(t, 431, status, body)
	assert.JSONEq(t, `{"error":"headers_too_large","message":"Request headers too large"}`, body)
	assert.Zero(t, q.Depth().Records)
	assertAgentHealthy(t, q, base)
}

func TestHostile_AgentStoresSQLLookingStringsVerbatim(t *testing.T) {
	q, base := start(t, queue.Config{})
	evil := `x'); DROP TABLE remediation_audit; --`
	resp, body := post(t, base+"/api/v1/audit/remediation", `{"remediationRequestID":"x'); DROP TABLE remediation_audit; --"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	got, err := q.Read(context.Background(), 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, evil, stored(t, got[0]).Remediation.RemediationRequestID)
}

func TestHostile_AgentCutsOffASlowClientAndStaysHealthy(t *testing.T) {
	q, base := startWith(t, queue.Config{}, agent.Config{ReadTimeout: 500 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// Slowloris: a header line now and then, never the end of the request.
	_, err = conn.Write([]byte("POST /api/v1/audit/remediation HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.Zero(t, q.Depth().Records)
			assertAgentHealthy(t, q, base)
			return
		case <-tick.C:
			_, _ = fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i)
		case <-time.After(10 * time.Second):
			t.Fatal("the slow connection was never closed")
		}
	}
}

func assertAgentHealthy(t *testing.T, q *queue.Queue, base string) {
	t.Helper()
	r, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode)
	before := q.Depth().Records
	resp, body := post(t, base+"/api/v1/audit/workflow", `{"workflowID":"wf-health","stepName":"s","stepStatus":"completed"}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.Equal(t, before+1, q.Depth().Records)
}
