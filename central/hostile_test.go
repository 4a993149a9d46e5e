package central_test

import (
	"bufio"
	"bytes"
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

	"github.com/kubernaut/datastorage/internal/tstest/hostile"
	"github.com/kubernaut/datastorage/wire"
)

// TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsStored runs the
// shared table (internal/tstest/hostile; the agent runs it too) against the central.
func TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsStored(t *testing.T) {
	h := newHarness(t, options{})
	var ran int
	h.hostileScope("the hostile table", func() {
		ran = hostile.Run(t, h.url, hostile.Central, func(tok string) string {
			if tok == hostile.TokenOutsider {
				return outsiderToken
			}
			return tokenOf("gateway-sa")
		})
	})
	assert.GreaterOrEqual(t, ran, 40)
	assert.Zero(t, h.rows(t, "remediation_audit"))
	assert.Zero(t, h.rows(t, "workflow_audit"))
	assertHealthy(t, h)
}

// TestHostile_RefusedWithoutReadingTheBody announces large bodies and sends
// only their first 8 KiB (what fasthttp reads ahead before it calls the
// handler): each caller that may not send them is answered from its headers
// alone, so an unauthenticated or unauthorized flood of 16 MiB bodies costs
// the central nothing beyond those 8 KiB per request.
// TestHostile_AClientStillSendingItsBodyGetsItsAnswer: a caller refused on
// its headers while it is still sending a large body reads the refusal, not
// a reset connection (the central closes lingering). Without that, about
// half of these requests failed with "connection reset by peer".
func TestHostile_AClientStillSendingItsBodyGetsItsAnswer(t *testing.T) {
	h := newHarness(t, options{})
	for i := range 20 {
		token := []string{"", "no-such-token", outsiderToken}[i%3]
		req, err := http.NewRequest(http.MethodPost, h.url+"/api/v1/audit/batch", bytes.NewReader(bytes.Repeat([]byte(" "), wire.MaxBatchBytes)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r := h.do(t, markInvalid(req, "a body of spaces"))
		assert.Contains(t, []int{401, 403}, r.status, r.body)
	}
}

func TestHostile_RefusedWithoutReadingTheBody(t *testing.T) {
	h := newHarness(t, options{})
	for _, tc := range []struct {
		name, path, token string
		length, status    int
		code              string
	}{
		{"a body beyond the largest batch", "/api/v1/audit/batch", tokenOf("gateway-sa"), wire.MaxBatchBytes + 1, 413, wire.CodePayloadTooLarge},
		{"no token", "/api/v1/audit/batch", "", wire.MaxBatchBytes, 401, wire.CodeAuthenticationFailed},
		{"an unknown token", "/api/v1/audit/batch", "no-such-token", wire.MaxBatchBytes, 401, wire.CodeAuthenticationFailed},
		{"a writer of no kind", "/api/v1/audit/batch", outsiderToken, wire.MaxBatchBytes, 403, wire.CodeAuthorizationFailed},
		{"a kind the writer may not write", "/api/v1/audit/workflow", tokenOf("gateway-sa"), wire.MaxRecordBytes, 403, wire.CodeAuthorizationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			auth := ""
			if tc.token != "" {
				auth = "Authorization: Bearer " + tc.token + "\r\n"
			}
			_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"+
				"Content-Length: %d\r\n\r\n%s", tc.path, auth, tc.length, strings.Repeat(" ", 8<<10))
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "the answer comes without the rest of the body")
			sent, err := http.NewRequest(http.MethodPost, h.url+tc.path, nil)
			require.NoError(t, err)
			sent.Header.Set("Content-Type", "application/json")
			if tc.token != "" {
				sent.Header.Set("Authorization", "Bearer "+tc.token)
			}
			h.checkRaw(t, sent, resp)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, "%s", body)
			var eb wire.ErrorBody
			require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
			assert.Equal(t, tc.code, eb.Error)
		})
	}
	assertHealthy(t, h)
}

func TestHostile_HeadersTooLargeIs431(t *testing.T) {
	h := newHarness(t, options{})
	var status int
	var body string
	h.hostileScope("huge headers", func() {
		status, body = hostile.HugeHeaders(t, h.url+"/api/v1/audit/remediation",
			map[string]string{"Authorization": "Bearer " + tokenOf("gateway-sa")})
	})
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
			h.checkUnparsed(t, nil, []byte(answer))
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

// TestHostile_NoTokenOrRecordContentReachesTheLog sends the hostile table
// and requests fasthttp cannot parse, each with a token and content of its
// own, and reads every line the central logged.
func TestHostile_NoTokenOrRecordContentReachesTheLog(t *testing.T) {
	h := newHarness(t, options{readTime: time.Second})
	h.hostileScope("the hostile table", func() {
		hostile.Run(t, h.url, hostile.Central, func(tok string) string {
			if tok == hostile.TokenOutsider {
				return outsiderToken
			}
			return tokenOf("gateway-sa")
		})
	})
	const secret, content = "tok-3c1f9e-secret", "content-9b2d7a-private"
	for name, raw := range hostile.Malformed("/api/v1/audit/batch", secret, content) {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			_, _ = conn.Write([]byte(raw))
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			answer, _ := io.ReadAll(conn) // an answer, or the server closing
			sent, err := http.NewRequest(http.MethodPost, h.url+"/api/v1/audit/batch", nil)
			require.NoError(t, err)
			sent.Header.Set("Content-Type", "application/json")
			sent.Header.Set("Authorization", "Bearer "+secret)
			h.checkUnparsed(t, sent, answer)
		})
	}
	assertHealthy(t, h)

	lines := strings.Split(h.logs.String(), "\n")
	require.Greater(t, len(lines), 40, "every refused request is logged")
	for i, line := range lines {
		for _, leak := range []string{secret, content, tokenOf("gateway-sa"), outsiderToken, "rr-1",
			"eyJhbGciOiJSUzI1NiJ9", "OR '1'='1", "Z3c6cHc="} {
			if strings.Contains(line, leak) {
				t.Errorf("log line %d holds %q: %.300s", i+1, leak, line)
			}
		}
	}
}
