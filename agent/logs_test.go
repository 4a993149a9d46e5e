package agent_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/tstest/hostile"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
)

// Markers: a bearer token and record content no log line may ever contain.
const (
	markerToken   = "eyJtoken.M4RKER-t0ken-5ecret.sig"
	markerContent = "M4RKER-rec0rd-c0ntent"
)

// malformedRequests reach fasthttp's parser, whose errors quote the request
// buffer (headers and body).
func malformedRequests() map[string]string {
	auth := "Authorization: Bearer " + markerToken + "\r\n"
	body := `{"remediationRequestID":"` + markerContent + `"}`
	post := "POST /api/v1/audit/remediation HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
	return map[string]string{
		"content length not a number":  post + auth + "Content-Length: abc\r\n\r\n" + body,
		"header line without colon":    post + auth + "X-" + markerContent + " no colon here\r\nContent-Length: 2\r\n\r\n{}",
		"invalid method":               "P\x00ST /api/v1/audit/remediation HTTP/1.1\r\nHost: agent\r\n" + auth + "Content-Length: 2\r\n\r\n" + body,
		"request line without version": "POST /api/v1/audit/" + markerContent + "\r\n" + auth + "\r\n",
		"truncated chunked body": post + auth + "Transfer-Encoding: chunked\r\n\r\n" +
			"40\r\n" + body[:20],
		"bad chunk size":   post + auth + "Transfer-Encoding: chunked\r\n\r\nzz" + markerContent + "\r\n" + body + "\r\n0\r\n\r\n",
		"oversized header": post + auth + "X-Padding: " + strings.Repeat(markerContent, 5000) + "\r\nContent-Length: 2\r\n\r\n{}",
		"body longer than its length": post + auth + "Content-Length: 5\r\n\r\n" + body +
			"GARBAGE " + markerContent + "\r\n\r\n",
	}
}

// sendRaw writes raw on a new connection, half-closes it and reads the
// answer to the end: the server closes a connection it could not parse
// only after it has logged why.
func sendRaw(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, _ = conn.Write([]byte(raw))
	_ = conn.(*net.TCPConn).CloseWrite()
	answer, _ := io.ReadAll(conn)
	return string(answer)
}

func TestServer_NoLogLineHoldsATokenOrRecordContentEvenAtDebug(t *testing.T) {
	logs := &syncbuf.Buffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	q, err := queue.Open(queue.Config{Dir: t.TempDir(), Logger: log})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close(context.Background())) }()
	srv, err := agent.NewServer(agent.Config{Listen: "127.0.0.1:0", MetricsListen: "-", ServiceAccount: "ns/gateway-sa",
		Logger: log, ReadTimeout: 2 * time.Second}, q)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	base := "http://" + srv.Addr()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, r := range hostile.Requests() {
		if !r.Expect(hostile.Agent).Applies() {
			continue
		}
		req, err := r.NewHTTP(base, func(string) string { return markerToken })
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+markerToken)
		req.Header.Set("X-Note", markerContent)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	hostile.HugeHeaders(t, base+"/api/v1/audit/remediation", map[string]string{"Authorization": "Bearer " + markerToken})
	for name, raw := range malformedRequests() {
		answer := sendRaw(t, srv.Addr(), raw)
		t.Logf("%s: %.60q", name, answer)
	}
	resp, body := post(t, base+"/api/v1/audit/remediation", `{"remediationRequestID":"`+markerContent+`"}`,
		"Authorization", "Bearer "+markerToken)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	require.NoError(t, srv.Close(context.Background()))

	out := logs.String()
	require.Contains(t, out, "error when serving connection", "the parser's errors are still logged, without their arguments")
	for i, line := range strings.Split(out, "\n") {
		assert.NotContains(t, line, "M4RKER", "log line %d", i+1)
	}
}
