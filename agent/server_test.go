package agent_test

import (
	"context"
	"encoding/base64"
	stdjson "encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/agent"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

func start(t *testing.T, qcfg queue.Config) (*queue.Queue, string) {
	t.Helper()
	return startWith(t, qcfg, agent.Config{})
}

// startWith starts a server with cfg's fields over the test defaults.
func startWith(t *testing.T, qcfg queue.Config, cfg agent.Config) (*queue.Queue, string) {
	t.Helper()
	q, srv := startServer(t, qcfg, cfg)
	return q, "http://" + srv.Addr()
}

// startServer is startWith returning the server.
func startServer(t *testing.T, qcfg queue.Config, cfg agent.Config) (*queue.Queue, *agent.Server) {
	t.Helper()
	if qcfg.Dir == "" {
		qcfg.Dir = t.TempDir()
	}
	q, err := queue.Open(qcfg)
	require.NoError(t, err)
	cfg.Listen, cfg.MetricsListen, cfg.ServiceAccount, cfg.RetryAfter = "127.0.0.1:0", "-", "ns/gateway-sa", 3*time.Second
	srv, err := agent.NewServer(cfg, q)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		require.NoError(t, srv.Close(context.Background()))
		require.NoError(t, q.Close(context.Background()))
	})
	return q, srv
}

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

const remediation = `{"remediationRequestID":"rr-abc123","alertName":"HighMemoryUsage","namespace":"production","cluster":"us-west-2","priority":"P0"}`

// stored decodes and validates a buffered entry, as the central will.
func stored(t *testing.T, e queue.Entry) wire.Record {
	t.Helper()
	it, err := e.Decode()
	require.NoError(t, err)
	rec, err := it.Decode(time.Now())
	require.NoError(t, err)
	return rec
}

func TestServer_AcceptsAWriteOnlyOnceItIsStored(t *testing.T) {
	q, base := start(t, queue.Config{})
	resp, body := post(t, base+"/api/v1/audit/remediation", remediation)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var wr wire.WriteResponse
	require.NoError(t, json.Unmarshal(body, &wr))
	assert.Equal(t, "buffered", wr.Status)
	assert.NoError(t, wire.ValidateID(wr.AuditID))

	got, err := q.Read(context.Background(), 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, got, 1)
	rec := stored(t, got[0])
	assert.Equal(t, wr.AuditID, got[0].ID)
	assert.Equal(t, wr.AuditID, rec.ID)
	assert.Equal(t, "HighMemoryUsage", rec.Remediation.AlertName)
	assert.WithinDuration(t, time.Now(), rec.ReceivedAt, 5*time.Second)

	resp, body = post(t, base+"/api/v1/audit/workflow", `{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
}

// An oversized body is in the shared hostile table (agent/hostile_test.go),
// which retries the reset a too-early refusal can cause.
func TestServer_AnswersErrorsWithTheSpecBodies(t *testing.T) {
	_, base := start(t, queue.Config{})
	for _, c := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"missing required field", "/api/v1/audit/remediation", `{"alertName":"x"}`, 400,
			`{"error":"validation_failed","message":"RemediationRequestID is required","field":"remediationRequestID"}`},
		{"unknown path", "/api/v1/audit/other", `{}`, 404, `"error":"not_found"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, base+c.path, c.body)
			assert.Equal(t, c.status, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.Contains(t, string(body), c.want)
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		resp, err := http.Get(base + "/api/v1/audit/remediation")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
	t.Run("wrong content type", func(t *testing.T) {
		resp, body := post(t, base+"/api/v1/audit/remediation", remediation, "Content-Type", "text/plain")
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
		assert.Contains(t, string(body), `"unsupported_media_type"`)
	})
}

func TestServer_IdempotencyKeyGivesTheSameID(t *testing.T) {
	_, base := start(t, queue.Config{})
	id := func(key string) string {
		resp, body := post(t, base+"/api/v1/audit/remediation", remediation, "Idempotency-Key", key)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
		var wr wire.WriteResponse
		require.NoError(t, json.Unmarshal(body, &wr))
		return wr.AuditID
	}
	a := id("key-1")
	assert.Equal(t, a, id("key-1"))
	assert.Equal(t, wire.IDForKey("ns/gateway-sa", wire.KindRemediation, "key-1"), a, "same ID as the central would give")
	assert.NotEqual(t, a, id("key-2"))
}

func TestServer_FullBufferAnswers503ThenRecoversAfterADrain(t *testing.T) {
	q, base := start(t, queue.Config{MaxBytes: 2 << 10})
	var resp *http.Response
	var body []byte
	for range 100 {
		resp, body = post(t, base+"/api/v1/audit/remediation", remediation)
		if resp.StatusCode != http.StatusCreated {
			break
		}
	}
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "3", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), `"error":"service_unavailable"`)

	got, err := q.Read(context.Background(), 1000, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.Ack(context.Background(), got[len(got)-1].Key))
	resp, body = post(t, base+"/api/v1/audit/remediation", remediation)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
}

func TestServer_ListsAndDeletesDeadLetters(t *testing.T) {
	q, base := start(t, queue.Config{})
	resp, _ := post(t, base+"/api/v1/audit/remediation", remediation)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	got, err := q.Read(context.Background(), 10, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.DeadLetter(context.Background(), got, "validation_failed: nope"))

	r, err := http.Get(base + "/api/v1/deadletter")
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	var list agent.DeadLetterList
	b, _ := io.ReadAll(r.Body)
	require.NoError(t, json.Unmarshal(b, &list), string(b))
	assert.EqualValues(t, 1, list.Count)
	require.Len(t, list.DeadLetters, 1)
	assert.Equal(t, got[0].ID, list.DeadLetters[0].ID)
	assert.Equal(t, "validation_failed: nope", list.DeadLetters[0].Reason)
	assert.JSONEq(t, remediation, string(list.DeadLetters[0].Record), "the body the client sent")

	del := func(query string) (int, string) {
		req, err := http.NewRequest(http.MethodDelete, base+"/api/v1/deadletter"+query, nil)
		require.NoError(t, err)
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	code, body := del("")
	assert.Equal(t, http.StatusBadRequest, code, "deleting needs an explicit last seq")
	assert.Contains(t, body, `"field":"through"`)
	code, body = del(fmt.Sprintf("?through=%d", list.DeadLetters[0].Key))
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"deleted":1}`, body)
	assert.Zero(t, q.DeadLetters())
	assert.Zero(t, q.Depth().DeadBytes)
}

func TestServer_ReadyzFailsNearTheBufferLimit(t *testing.T) {
	q, base := start(t, queue.Config{MaxBytes: 1 << 20})
	status := func() int {
		r, err := http.Get(base + "/readyz")
		require.NoError(t, err)
		r.Body.Close()
		return r.StatusCode
	}
	require.Equal(t, http.StatusOK, status())
	for {
		rec := wire.RawRecord{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC(),
			Body: []byte(`{"remediationRequestID":"rr","reasoning":"` + strings.Repeat("x", 4<<10) + `"}`)}
		if err := q.Append(context.Background(), []wire.RawRecord{rec}); err != nil {
			require.ErrorIs(t, err, queue.ErrFull)
			break
		}
	}
	assert.Equal(t, http.StatusServiceUnavailable, status())
	got, err := q.Read(context.Background(), 100, 1<<20)
	require.NoError(t, err)
	require.NoError(t, q.Ack(context.Background(), got[len(got)-1].Key))
	assert.Equal(t, http.StatusOK, status())
}

func TestServiceAccountFromToken(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	assert.Equal(t, "kubernaut/gateway-sa", agent.ServiceAccountFromToken(jwt(`{"sub":"system:serviceaccount:kubernaut:gateway-sa","aud":["x"]}`)+"\n"))
	assert.Equal(t, "", agent.ServiceAccountFromToken(jwt(`{"sub":"alice"}`)))
	assert.Equal(t, "", agent.ServiceAccountFromToken("not-a-jwt"))
	assert.Equal(t, "", agent.ServiceAccountFromToken(jwt(`not json`)))
}

// Sequences are Unix-nanosecond keys, above 2^53: a JSON tool that reads
// numbers as float64 (jq, JavaScript) would round one and then delete the
// wrong range.
func TestServer_DeadLetterSeqIsAStringThatJSONNumberToolsKeepExact(t *testing.T) {
	const seq = 1764412345678901249 // as a float64: …248, below it
	require.NotEqual(t, uint64(seq), uint64(float64(seq)), "the test needs a seq a float64 changes")
	q, base := startWith(t, queue.Config{Now: func() time.Time { return time.Unix(0, seq) }}, agent.Config{})
	resp, _ := post(t, base+"/api/v1/audit/remediation", remediation)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	got, err := q.Read(context.Background(), 10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, queue.Key(seq), got[0].Key)
	require.NoError(t, q.DeadLetter(context.Background(), got, "validation_failed: nope"))

	r, err := http.Get(base + "/api/v1/deadletter")
	require.NoError(t, err)
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), `"seq":"1764412345678901249"`)

	// What a script does: decode the list as untyped JSON, print the seq, pass it back.
	var list struct {
		DeadLetters []map[string]any `json:"deadLetters"`
	}
	require.NoError(t, stdjson.Unmarshal(body, &list))
	require.Len(t, list.DeadLetters, 1)
	var through string
	switch v := list.DeadLetters[0]["seq"].(type) {
	case string:
		through = v
	case float64:
		through = strconv.FormatFloat(v, 'f', -1, 64)
	}
	req, err := http.NewRequest(http.MethodDelete, base+"/api/v1/deadletter?through="+through, nil)
	require.NoError(t, err)
	r, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode, string(body))
	assert.JSONEq(t, `{"deleted":1}`, string(body), "through=%s", through)
	assert.Zero(t, q.DeadLetters())
}

// onlyKinds is an agent.Access that allows the kinds it holds.
type onlyKinds map[wire.Kind]bool

func (o onlyKinds) Allows(k wire.Kind) bool { return o[k] }

func TestServer_RefusesAKindItsIdentityMayNotWriteAtOnceAndStoresNothing(t *testing.T) {
	q, base := startWith(t, queue.Config{}, agent.Config{Access: onlyKinds{wire.KindRemediation: true}})
	resp, body := post(t, base+"/api/v1/audit/workflow", `{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"error":"authorization_failed","message":"ns/gateway-sa may not write workflow audits"}`, string(body))
	assert.Zero(t, q.Depth().Records, "nothing stored")

	resp, body = post(t, base+"/api/v1/audit/remediation", remediation)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	assert.EqualValues(t, 1, q.Depth().Records)
}

// send makes a request with no body and returns the status and body.
func send(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return r.StatusCode, r.Header, string(b)
}

// deadLetters buffers n remediation records through the API and
// dead-letters them, oldest first.
func deadLetters(t *testing.T, q *queue.Queue, base string, n int) []queue.Entry {
	t.Helper()
	for range n {
		resp, body := post(t, base+"/api/v1/audit/remediation", remediation)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	}
	got, err := q.Read(context.Background(), n, 1<<20)
	require.NoError(t, err)
	require.Len(t, got, n)
	require.NoError(t, q.DeadLetter(context.Background(), got, "authorization_failed: ns/gateway-sa may not write remediation audits"))
	return got
}

func TestServer_ReplaysDeadLettersThroughASeq(t *testing.T) {
	q, base := start(t, queue.Config{})
	dead := deadLetters(t, q, base, 2)
	url := base + "/api/v1/deadletter/replay"

	for _, query := range []string{"", "?through=", "?through=abc", "?through=0", "?through=-5", "?through=1e18", "?through=18446744073709551616"} {
		code, _, body := send(t, http.MethodPost, url+query)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %s", query, body)
		assert.Contains(t, body, `"field":"through"`, query)
	}
	code, hdr, _ := send(t, http.MethodGet, url+"?through=1")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "POST", hdr.Get("Allow"))
	assert.EqualValues(t, 2, q.DeadLetters(), "nothing replayed by a refused request")

	code, _, body := send(t, http.MethodPost, url+"?through="+strconv.FormatUint(uint64(dead[0].Key), 10))
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"replayed":1,"skipped":0}`, body)
	assert.EqualValues(t, 1, q.DeadLetters())
	got, err := q.Read(context.Background(), 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, dead[0].ID, got[0].ID, "the same ID: the central stores it once")
	assert.Equal(t, string(dead[0].Item[len(dead[0].Item)-len(remediation)-1:]), string(got[0].Item[len(got[0].Item)-len(remediation)-1:]))
}

// remoteListener makes every caller look as if it came from 10.1.2.3.
type remoteListener struct{ net.Listener }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000} }

// With --allow-remote-writes others may write; the dead letters stay the
// pod's business.
func TestServer_AnswersDeadLetterRequestsFromLoopbackOnly(t *testing.T) {
	q, srv := startServer(t, queue.Config{}, agent.Config{})
	dead := deadLetters(t, q, "http://"+srv.Addr(), 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	agent.ServeAPIOn(srv, remoteListener{ln})
	remote := "http://" + ln.Addr().String()
	through := "?through=" + strconv.FormatUint(uint64(dead[0].Key), 10)

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/deadletter"},
		{http.MethodDelete, "/api/v1/deadletter" + through},
		{http.MethodPost, "/api/v1/deadletter/replay" + through},
	} {
		code, _, body := send(t, c.method, remote+c.path)
		assert.Equal(t, http.StatusNotFound, code, "%s %s: %s", c.method, c.path, body)
	}
	assert.EqualValues(t, 1, q.DeadLetters())
	assert.Zero(t, q.Depth().Records)
	resp, body := post(t, remote+"/api/v1/audit/remediation", remediation)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, "writes are not loopback-only here: %s", body)
}
