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

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

// hostile is one adversarial request and the answer it must get.
type hostile struct {
	name    string
	method  string // POST when empty
	path    string // the remediation endpoint when empty
	token   string // the gateway's when empty; "-" sends no Authorization
	headers map[string]string
	body    []byte
	status  int
	code    string // the "error" of the JSON body
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	return enc.EncodeAll(b, nil)
}

func hostileRequests() []hostile {
	valid := []byte(`{"remediationRequestID":"rr-1"}`)
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	manyRecords := `{"records":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"remediation","record":{"remediationRequestID":"r"}},`, wire.MaxBatchRecords+1), ",") + `]}`
	bombJSON := append([]byte(`{"remediationRequestID":"rr-1","reasoning":"`), bytes.Repeat([]byte("a"), 8<<20)...)
	bombJSON = append(bombJSON, `"}`...)
	const batch = "/api/v1/audit/batch"
	return []hostile{
		// Sizes and compression.
		{name: "record over 64 KiB", body: []byte(fmt.Sprintf(`{"remediationRequestID":"rr-1","reasoning":%q}`, strings.Repeat("x", 70<<10))), status: 413, code: wire.CodePayloadTooLarge},
		{name: "gzip bomb on a single record", headers: map[string]string{"Content-Encoding": "gzip"}, body: gzipped(bombJSON), status: 413, code: wire.CodePayloadTooLarge},
		{name: "zstd bomb on a batch", path: batch, headers: map[string]string{"Content-Encoding": "zstd"}, body: zstded(bytes.Repeat([]byte(" "), wire.MaxBatchBytes+1)), status: 413, code: wire.CodePayloadTooLarge},
		{name: "gzip header on a plain body", headers: map[string]string{"Content-Encoding": "gzip"}, body: valid, status: 400, code: wire.CodeValidationFailed},
		{name: "zstd header on a plain body", headers: map[string]string{"Content-Encoding": "zstd"}, body: valid, status: 400, code: wire.CodeValidationFailed},
		{name: "unsupported content encoding", headers: map[string]string{"Content-Encoding": "br"}, body: valid, status: 415, code: wire.CodeUnsupportedMediaType},
		{name: "more records than a batch may hold", path: batch, body: []byte(manyRecords), status: 400, code: wire.CodeValidationFailed},
		// Malformed JSON.
		{name: "deep nesting", body: []byte(deep), status: 400, code: wire.CodeValidationFailed},
		{name: "deep nesting inside a field", body: []byte(`{"remediationRequestID":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`), status: 400, code: wire.CodeValidationFailed},
		{name: "invalid UTF-8 in a value", body: []byte("{\"remediationRequestID\":\"rr-\xff\xfe\"}"), status: 400, code: wire.CodeValidationFailed},
		{name: "invalid UTF-8 in a key", body: []byte("{\"remediation\xffRequestID\":\"rr-1\"}"), status: 400, code: wire.CodeValidationFailed},
		{name: "NUL character", body: []byte(`{"remediationRequestID":"rr-\u0000"}`), status: 400, code: wire.CodeValidationFailed},
		{name: "empty body", body: nil, status: 400, code: wire.CodeValidationFailed},
		{name: "null", body: []byte(`null`), status: 400, code: wire.CodeValidationFailed},
		{name: "array instead of object", body: []byte(`[{"remediationRequestID":"rr-1"}]`), status: 400, code: wire.CodeValidationFailed},
		{name: "trailing garbage", body: []byte(`{"remediationRequestID":"rr-1"} {"x":1}`), status: 400, code: wire.CodeValidationFailed},
		{name: "duplicate keys", body: []byte(`{"remediationRequestID":"rr-1","remediationRequestID":"rr-2"}`), status: 400, code: wire.CodeValidationFailed},
		{name: "unknown field", body: []byte(`{"remediationRequestID":"rr-1","admin":true}`), status: 400, code: wire.CodeValidationFailed},
		{name: "NaN literal", body: []byte(`{"remediationRequestID":"rr-1","confidence":NaN}`), status: 400, code: wire.CodeValidationFailed},
		{name: "number overflow", body: []byte(`{"remediationRequestID":"rr-1","confidence":1e400}`), status: 400, code: wire.CodeValidationFailed},
		{name: "name longer than its column", body: []byte(fmt.Sprintf(`{"remediationRequestID":%q}`, strings.Repeat("r", 256))), status: 400, code: wire.CodeValidationFailed},
		{name: "negative duration", body: []byte(`{"remediationRequestID":"rr-1","duration":-5}`), status: 400, code: wire.CodeValidationFailed},
		{name: "timestamp in year 9999", body: []byte(`{"remediationRequestID":"rr-1","createdAt":"9999-01-01T00:00:00Z"}`), status: 400, code: wire.CodeValidationFailed},
		{name: "batch records not an array", path: batch, body: []byte(`{"records":{"kind":"remediation"}}`), status: 400, code: wire.CodeValidationFailed},
		// Headers, methods, paths.
		{name: "text/plain", headers: map[string]string{"Content-Type": "text/plain"}, body: valid, status: 415, code: wire.CodeUnsupportedMediaType},
		{name: "form encoded", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: valid, status: 415, code: wire.CodeUnsupportedMediaType},
		{name: "latin-1 charset", headers: map[string]string{"Content-Type": "application/json; charset=latin1"}, body: valid, status: 415, code: wire.CodeUnsupportedMediaType},
		{name: "GET on a write endpoint", method: "GET", status: 405, code: wire.CodeMethodNotAllowed},
		{name: "PUT on a write endpoint", method: "PUT", body: valid, status: 405, code: wire.CodeMethodNotAllowed},
		{name: "DELETE on the batch endpoint", method: "DELETE", path: batch, status: 405, code: wire.CodeMethodNotAllowed},
		{name: "unknown path", path: "/api/v1/audit/everything", body: valid, status: 404, code: wire.CodeNotFound},
		{name: "path with a traversal", path: "/api/v1/../../etc/passwd", body: valid, status: 404, code: wire.CodeNotFound},
		{name: "Idempotency-Key with non-ASCII characters", headers: map[string]string{"Idempotency-Key": "k-\u00fc"}, body: valid, status: 400, code: wire.CodeValidationFailed},
		{name: "Idempotency-Key too long", headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}, body: valid, status: 400, code: wire.CodeValidationFailed},
		// Tokens.
		{name: "no Authorization", token: "-", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
		{name: "empty bearer token", headers: map[string]string{"Authorization": "Bearer "}, token: "-", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
		{name: "Basic credentials", headers: map[string]string{"Authorization": "Basic Z3c6cHc="}, token: "-", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
		{name: "malformed bearer", headers: map[string]string{"Authorization": "Bearer a b c"}, token: "-", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
		{name: "expired or unknown token", token: "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
		{name: "service account outside the allow-list", token: outsiderToken, body: valid, status: 403, code: wire.CodeAuthorizationFailed},
		{name: "SQL in the token", token: "x' OR '1'='1", body: valid, status: 401, code: wire.CodeAuthenticationFailed},
	}
}

func TestHostile_EachRequestGetsItsStatusAndBodyAndNothingIsStored(t *testing.T) {
	h := newHarness(t, options{})
	client := &http.Client{Timeout: 20 * time.Second}
	for _, c := range hostileRequests() {
		t.Run(c.name, func(t *testing.T) {
			method, path := c.method, c.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/api/v1/audit/remediation"
			}
			req, err := http.NewRequest(method, h.url+path, bytes.NewReader(c.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			switch c.token {
			case "":
				req.Header.Set("Authorization", "Bearer "+tokenOf("gateway-sa"))
			case "-":
			default:
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, c.status, resp.StatusCode, "%s", body)
			var eb wire.ErrorBody
			require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
			assert.Equal(t, c.code, eb.Error)
			assert.NotEmpty(t, eb.Message)
		})
	}
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
	r := h.post(t, "/api/v1/audit/remediation", tokenOf("gateway-sa"), []byte(`{"remediationRequestID":"rr-1"}`),
		"X-Padding", strings.Repeat("p", 64<<10))
	require.Equal(t, 431, r.status, r.body)
	assert.JSONEq(t, `{"error":"headers_too_large","message":"Request headers too large"}`, r.body)
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
