package main_test

// Integration tests: the real central binary and the real agent binary as
// child processes, against a fresh PostgreSQL database from internal/tstest/pgtest.
// Each test ends with "every acknowledged ID is in PostgreSQL exactly once".

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/faultproxy"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
	"github.com/kubernaut/datastorage/wire"
)

// serviceAccount is the identity of every token below; the agent derives it
// from the JWT's "sub" claim for Idempotency-Key IDs.
const serviceAccount = "kubernaut-system/gateway-sa"

// saToken is a JWT-shaped service-account token (unsigned: the central's
// static authenticator compares the whole string).
func saToken(n int) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"system:serviceaccount:kubernaut-system:gateway-sa","jti":"%d"}`, n)) + ".sig" + fmt.Sprint(n)
}

// tokenCSV is the central's static token file for tokens ns of the same SA.
func tokenCSV(ns ...int) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "%s,system:serviceaccount:kubernaut-system:gateway-sa,uid-gw,\"system:serviceaccounts\"\n", saToken(n))
	}
	return b.String()
}

// writeAtomically replaces path's content the way the kubelet rotates a
// projected token: write a new file, rename over the old one.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// centralProc is the real central running as a child process. Its ports
// stay the same across restarts, so the agent's --central-url stays valid.
type centralProc struct {
	dsn, api, metrics, tokens, authz string
	p                                *harness.Process
	// tlsArgs serve the API over TLS (https URL); readiness is then asked
	// on the metrics port, as the kubelet does (it has no client certificate).
	tlsArgs []string
}

// bothKinds lets gateway-sa write both kinds: the default allow-list lets it
// write remediation only, and most tests write both through one agent.
const bothKinds = "serviceAccounts:\n- name: gateway-sa\n  namespace: kubernaut-system\n" +
	"  actions: [write:remediation, write:workflow]\n"

func startCentral(t *testing.T, dsn, tokens string) *centralProc {
	t.Helper()
	return startCentralWith(t, dsn, tokens, bothKinds)
}

// startCentralWith runs the central with an allow-list of its own.
func startCentralWith(t *testing.T, dsn, tokens, authz string) *centralProc {
	t.Helper()
	c := newCentralProc(t, dsn, tokens, authz)
	c.start(t)
	return c
}

// startMTLSCentral runs the central over TLS with a certificate issued by
// serverCA for 127.0.0.1, requiring client certificates issued by clientCA
// (--client-ca-file), with static tokens as startCentral.
func startMTLSCentral(t *testing.T, dsn, tokens string, serverCA, clientCA *testcerts.CA) *centralProc {
	t.Helper()
	c := newCentralProc(t, dsn, tokens, bothKinds)
	dir := t.TempDir()
	certFile, keyFile := serverCA.Server(t).WriteFiles(t, dir, "tls")
	clientCAFile := filepath.Join(dir, "client-ca.crt")
	require.NoError(t, os.WriteFile(clientCAFile, clientCA.CertPEM, 0o600))
	c.tlsArgs = []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--client-ca-file", clientCAFile}
	c.start(t)
	return c
}

func newCentralProc(t *testing.T, dsn, tokens, authz string) *centralProc {
	t.Helper()
	dir := t.TempDir()
	c := &centralProc{dsn: dsn, api: freeport.Addr(t), metrics: freeport.Addr(t),
		tokens: filepath.Join(dir, "tokens.csv"), authz: filepath.Join(dir, "authz.yaml")}
	require.NoError(t, os.WriteFile(c.tokens, []byte(tokens), 0o600))
	require.NoError(t, os.WriteFile(c.authz, []byte(authz), 0o600))
	return c
}

func (c *centralProc) url() string {
	if c.tlsArgs != nil {
		return "https://" + c.api
	}
	return "http://" + c.api
}

func (c *centralProc) readyURL() string {
	if c.tlsArgs != nil {
		return "http://" + c.metrics + "/readyz"
	}
	return c.url() + "/readyz"
}

func (c *centralProc) start(t *testing.T) {
	t.Helper()
	c.p = harness.StartTB(t, harness.Command{Name: "central", Path: harness.BuildOnce(t).Central,
		Args: append([]string{"serve", "--listen", c.api, "--metrics-listen", c.metrics,
			"--auth", "static", "--token-file", c.tokens, "--authz-file", c.authz,
			"--rate-limit", "1000000", "--rate-burst", "1000", "--log-level", "warn", "--shutdown-timeout", "2s"}, c.tlsArgs...),
		Env: []string{"DATABASE_URL=" + c.dsn}, Ready: c.readyURL(), ReadyWithin: 30 * time.Second})
}

// stop signals the central and waits for it to exit, whatever its status.
func (c *centralProc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.p.Stop(sig, time.Minute); errors.Is(err, harness.ErrExited) {
		t.Fatal(err)
	}
}

// writer posts records to an agent with an Idempotency-Key per attempt, so
// that the ID of every attempt is known even when no answer came back.
type writer struct {
	run   string // key prefix, unique per writer
	loads atomic.Int64

	mu        sync.Mutex
	attempted map[string]bool // IDs of every request sent
	acked     []string        // IDs answered 201
	statuses  map[int]int
}

func newWriter(run string) *writer {
	return &writer{run: run, attempted: map[string]bool{}, statuses: map[int]int{}}
}

// post sends one record (remediation or workflow by i's parity) and returns
// the status, 0 when no answer came back.
func (w *writer) post(t *testing.T, client *http.Client, agentAddr string, g, i int) int {
	status, _, _ := w.send(t, client, agentAddr, fmt.Sprintf("%s-%d-%d", w.run, g, i), i%2 == 1)
	return status
}

// send posts one record with Idempotency-Key key and returns the answer.
func (w *writer) send(t *testing.T, client *http.Client, agentAddr, key string, workflow bool) (int, http.Header, []byte) {
	kind, path, body := wire.KindRemediation, "/api/v1/audit/remediation",
		fmt.Sprintf(`{"remediationRequestID":"rr-%s","alertName":"HighMemoryUsage","reasoning":"memory pressure on three replicas"}`, key)
	if workflow {
		kind, path, body = wire.KindWorkflow, "/api/v1/audit/workflow",
			fmt.Sprintf(`{"workflowID":"wf-%s","stepName":"scale","stepStatus":"completed"}`, key)
	}
	id := wire.IDForKey(serviceAccount, kind, key)
	w.mu.Lock()
	require.False(t, w.attempted[id], "key %s reused", key)
	w.attempted[id] = true
	w.mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, "http://"+agentAddr+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.statuses[resp.StatusCode]++
	if resp.StatusCode == http.StatusCreated {
		var wr wire.WriteResponse
		if assert.NoError(t, json.Unmarshal(answer, &wr)) && assert.Equal(t, id, wr.AuditID, "Idempotency-Key ID") {
			w.acked = append(w.acked, wr.AuditID)
		}
	}
	return resp.StatusCode, resp.Header, answer
}

// load posts from n goroutines until ctx ends or the agent stops answering.
func (w *writer) load(ctx context.Context, t *testing.T, agentAddr string, n int) {
	round := int(w.loads.Add(1)) * 1000 // keys differ from one load to the next
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for g := range n {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				switch w.post(t, client, agentAddr, round+g, i) {
				case 0:
					return // the agent died
				case http.StatusCreated:
				default:
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// loadFor runs load in the background; the returned func stops it and waits.
func (w *writer) loadFor(t *testing.T, agentAddr string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.load(ctx, t, agentAddr, n); close(done) }()
	return func() { cancel(); <-done }
}

func (w *writer) ackedIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// storedIDs is every audit ID in PostgreSQL with its number of rows.
func storedIDs(t *testing.T, dsn string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, count(*) FROM (
		SELECT id FROM remediation_audit UNION ALL SELECT id FROM workflow_audit) AS a GROUP BY id`)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// requireExactlyOnce waits until every acknowledged ID is in PostgreSQL,
// then checks each is there exactly once and that no other row exists.
// exact: the stored IDs must be the acknowledged ones; otherwise (after a
// kill -9 of the agent, when some requests got no answer) they may also be
// IDs of requests that were sent but not answered.
func (w *writer) requireExactlyOnce(t *testing.T, dsn string, exact bool) {
	t.Helper()
	acked := w.ackedIDs()
	require.NotEmpty(t, acked, "nothing was acknowledged: statuses %v", w.statuses)
	var stored map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored = storedIDs(t, dsn)
		missing := 0
		for _, id := range acked {
			if stored[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d of %d acknowledged records never reached PostgreSQL", missing, len(acked))
		time.Sleep(100 * time.Millisecond)
	}
	ackedSet := map[string]bool{}
	for _, id := range acked {
		require.False(t, ackedSet[id], "the agent acknowledged %s twice", id)
		ackedSet[id] = true
		require.Equal(t, 1, stored[id], "rows for acknowledged %s", id)
	}
	for id, n := range stored {
		require.Equal(t, 1, n, "rows for %s", id)
		if exact {
			require.True(t, ackedSet[id], "row %s was never acknowledged", id)
		} else {
			require.True(t, w.attempted[id], "row %s was never sent", id)
		}
	}
	t.Logf("%d acknowledged, %d rows, statuses %v", len(acked), len(stored), w.statuses)
}

// startIntegrationAgent runs the agent against the central with a token file.
func startIntegrationAgent(t *testing.T, dataDir, centralURL, tokenFile string, extra ...string) *child {
	t.Helper()
	return startAgent(t, dataDir, centralURL, append([]string{"--token-file", tokenFile, "--linger", "20ms"}, extra...)...)
}

func writeToken(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte(saToken(n)), 0o600))
	return path
}

func TestIntegration_RecordsPostedToTheAgentArriveExactlyOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentral(t, dsn, tokenCSV(1))
	a := startIntegrationAgent(t, t.TempDir(), central.url(), writeToken(t, 1))
	w := newWriter("plain")
	stop := w.loadFor(t, a.listen, 8)
	time.Sleep(500 * time.Millisecond)
	stop()
	w.requireExactlyOnce(t, dsn, true)
	require.Eventually(t, func() bool { return a.metric(t, "agent_queue_buffered_records") == 0 }, 5*time.Second, 20*time.Millisecond)
	a.term(t)
}

func TestIntegration_CentralDownWhileTheAgentKeepsAccepting(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentral(t, dsn, tokenCSV(1))
	a := startIntegrationAgent(t, t.TempDir(), central.url(), writeToken(t, 1))
	w := newWriter("central-down")
	stop := w.loadFor(t, a.listen, 4)
	time.Sleep(300 * time.Millisecond)
	central.stop(t, syscall.SIGKILL)
	before := len(w.ackedIDs())
	time.Sleep(time.Second)
	require.Greater(t, len(w.ackedIDs()), before, "the agent stopped accepting while the central was down")
	require.Positive(t, a.metric(t, "agent_queue_buffered_records"), "records wait in the buffer")
	central.start(t)
	time.Sleep(300 * time.Millisecond)
	stop()
	w.requireExactlyOnce(t, dsn, true)
	a.term(t)
}

func TestIntegration_PostgreSQLDownWhileTheAgentKeepsAccepting(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	proxy, err := faultproxy.Start(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	central := startCentral(t, viaProxy.String(), tokenCSV(1))
	a := startIntegrationAgent(t, t.TempDir(), central.url(), writeToken(t, 1))
	w := newWriter("pg-down")
	stop := w.loadFor(t, a.listen, 4)
	time.Sleep(300 * time.Millisecond)
	proxy.SetDown(true)
	before := len(w.ackedIDs())
	time.Sleep(1500 * time.Millisecond)
	require.Greater(t, len(w.ackedIDs()), before, "the agent stopped accepting while PostgreSQL was down")
	require.Positive(t, a.metric(t, `agent_forward_errors_total{class="unavailable"}`), "the central answered 503")
	proxy.SetDown(false)
	time.Sleep(300 * time.Millisecond)
	stop()
	w.requireExactlyOnce(t, dsn, true)
	a.term(t)
}

func TestIntegration_AgentKilledMidLoadLosesNoAcknowledgedRecord(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentral(t, dsn, tokenCSV(1))
	token, dataDir := writeToken(t, 1), t.TempDir()
	w := newWriter("kill9")
	for round := range 2 {
		a := startIntegrationAgent(t, dataDir, central.url(), token)
		stop := w.loadFor(t, a.listen, 16)
		time.Sleep(time.Duration(300+200*round) * time.Millisecond)
		a.kill(t)
		stop()
	}
	a := startIntegrationAgent(t, dataDir, central.url(), token)
	w.requireExactlyOnce(t, dsn, false)
	a.term(t)
}

func TestIntegration_FullBufferAnswers503ThenRecovers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentral(t, dsn, tokenCSV(1))
	central.stop(t, syscall.SIGTERM)
	a := startIntegrationAgent(t, t.TempDir(), central.url(), writeToken(t, 1), "--max-buffer-bytes", "16384")
	w := newWriter("full")
	client := &http.Client{Timeout: 10 * time.Second}

	var (
		status   int
		header   http.Header
		fullBody []byte
	)
	for i := 0; status != http.StatusServiceUnavailable; i++ {
		require.Less(t, i, 1000, "the buffer never filled")
		status, header, fullBody = w.send(t, client, a.listen, fmt.Sprintf("fill-%d", i), false)
		require.Contains(t, []int{http.StatusCreated, http.StatusServiceUnavailable}, status, string(fullBody))
	}
	assert.NotEmpty(t, header.Get("Retry-After"))
	assert.Contains(t, header.Get("Content-Type"), "application/json")
	var eb wire.ErrorBody
	require.NoError(t, json.Unmarshal(fullBody, &eb), string(fullBody))
	assert.Equal(t, "service_unavailable", eb.Error, string(fullBody))
	t.Logf("buffer full after %d records: %s", len(w.acked), fullBody)

	central.start(t)
	w.requireExactlyOnce(t, dsn, true)
	// Space is back: writes succeed again and arrive too.
	i := 0
	require.Eventually(t, func() bool {
		i++
		return w.post(t, client, a.listen, 0, i) == http.StatusCreated
	}, 10*time.Second, 50*time.Millisecond, "the agent still refuses writes after the drain")
	w.requireExactlyOnce(t, dsn, true) // the refused records were not stored
	a.term(t)
}

func TestIntegration_RotatedTokenFileIsPickedUp(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	central := startCentral(t, dsn, tokenCSV(1, 2))
	token := writeToken(t, 1)
	a := startIntegrationAgent(t, t.TempDir(), central.url(), token)
	w := newWriter("rotate")
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 10 {
		require.Equal(t, http.StatusCreated, w.post(t, client, a.listen, 0, i))
	}
	w.requireExactlyOnce(t, dsn, true)

	// Token 1 expires: the central now knows only token 2, which the
	// kubelet has not yet written to the agent's file.
	central.stop(t, syscall.SIGTERM)
	require.NoError(t, os.WriteFile(central.tokens, []byte(tokenCSV(2)), 0o600))
	central.start(t)
	for i := range 10 {
		require.Equal(t, http.StatusCreated, w.post(t, client, a.listen, 1, i))
	}
	require.Eventually(t, func() bool {
		return a.metric(t, `agent_forward_errors_total{class="unauthorized"}`) > 0
	}, 10*time.Second, 20*time.Millisecond, "the old token should be refused")
	require.Positive(t, a.metric(t, "agent_queue_buffered_records"), "refused records stay buffered")

	writeAtomically(t, token, saToken(2))
	w.requireExactlyOnce(t, dsn, true)
	a.term(t)
}
