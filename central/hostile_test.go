package central_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/hostile"
	"github.com/kubernaut/datastorage/wire"
)

// TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsStored runs the
// shared table (internal/hostile; the agent runs it too) against the central.
func TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsStored(t *testing.T) {
	h := newHarness(t, options{})
	ran := hostile.Run(t, h.url, hostile.Central, func(tok string) string {
		if tok == hostile.TokenOutsider {
			return outsiderToken
		}
		return tokenOf("gateway-sa")
	})
	assert.GreaterOrEqual(t, ran, 40)
	assert.Zero(t, h.rows(t, "remediation_audit"))
	assert.Zero(t, h.rows(t, "workflow_audit"))
	assertHealthy(t, h)
}

// TestHostile_BodyOverTheServerLimitIs413BeforeItIsRead announces a body
// beyond the largest batch: the server answers from the headers alone (a
// client still sending would see its connection reset, so none is sent).
func TestHostile_BodyOverTheServerLimitIs413BeforeItIsRead(t *testing.T) {
	h := newHarness(t, options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /api/v1/audit/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{", tokenOf("gateway-sa"), wire.MaxBatchBytes+1)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 413, resp.StatusCode, "%s", body)
	var eb wire.ErrorBody
	require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
	assert.Equal(t, wire.CodePayloadTooLarge, eb.Error)
	assertHealthy(t, h)
}

func TestHostile_HeadersTooLargeIs431(t *testing.T) {
	h := newHarness(t, options{})
	status, body := hostile.HugeHeaders(t, h.url+"/api/v1/audit/remediation",
		map[string]string{"Authorization": "Bearer " + tokenOf("gateway-sa")})
	require.Equal(t, 431, status, body)
	assert.JSONEq(t, `{"error":"headers_too_large","message":"Request headers too large"}`, body)
	assertHealthy(t, h)
}

func TestHostile_SQLLookingStringsAreStoredVerbatim(t *testing.T) {
	h := newHarness(t, options{})
	evil := `x'); DROP TABLE remediation_audit; --`
	body, _ := json.Marshal(map[string]string{"remediationRequestID": evil, "alertName": `"; DELETE FROM workflow_audit; --`})
	w := decodeWrite(t, h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), body))
	var id, alert string
	require.NoError(t, h.pool.QueryRow(context.Background(),
		`SELECT remediation_request_id, alert_name FROM remediation_audit WHERE id = $1`, w.AuditID).Scan(&id, &alert))
	assert.Equal(t, evil, id)
	assert.Equal(t, `"; DELETE FROM workflow_audit; --`, alert)
}

func TestHostile_SlowClientIsCutOffAndServerStaysHealthy(t *testing.T) {
	h := newHarness(t, options{readTime: 500 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// Slowloris: a header line now and then, never the end of the request.
	_, err = conn.Write([]byte("POST /api/v1/audit/remediation HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	start := time.Now()
	closed := make(chan string, 1)
	go func() {
		r := bufio.NewReader(conn)
		b, _ := io.ReadAll(r)
		closed <- string(b)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case answer := <-closed:
			assert.Less(t, time.Since(start), 5*time.Second, "the server must not wait for a slow client forever")
			if answer != "" {
				assert.Contains(t, answer, "408")
			}
			assertHealthy(t, h)
			return
		case <-tick.C:
			_, _ = conn.Write([]byte(fmt.Sprintf("X-Slow-%d: 1\r\n", i)))
		case <-time.After(10 * time.Second):
			t.Fatal("the slow connection was never closed")
		}
	}
}

func assertHealthy(t *testing.T, h *harness) {
	t.Helper()
	resp, err := http.Get(h.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	decodeWrite(t, h.post(t, "/api/v1/audit/workflow", tokenOf("workflowexecution-controller-sa"),
		[]byte(`{"workflowID":"wf-health","stepName":"s","stepStatus":"completed"}`)))
}
