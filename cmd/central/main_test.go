package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func TestHelp_ListsEveryContractFlagWithItsEnvironmentVariable(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, io.Discard, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp), err)
	for flagName, env := range map[string]string{
		"listen": "DATASTORAGE_LISTEN", "metrics-listen": "DATASTORAGE_METRICS_LISTEN",
		"database-url": "DATABASE_URL", "auth": "DATASTORAGE_AUTH", "token-file": "DATASTORAGE_TOKEN_FILE",
		"token-audience": "DATASTORAGE_TOKEN_AUDIENCE", "namespace": "DATASTORAGE_NAMESPACE",
		"authz-file": "DATASTORAGE_AUTHZ_FILE", "rate-limit": "DATASTORAGE_RATE_LIMIT", "rate-burst": "DATASTORAGE_RATE_BURST",
		"replicas": "DATASTORAGE_REPLICAS", "replica-heartbeat": "DATASTORAGE_REPLICA_HEARTBEAT", "replica-ttl": "DATASTORAGE_REPLICA_TTL",
	} {
		assert.Regexp(t, `(?s)-`+flagName+` .*?\(env `+env+`\)`, stderr.String())
	}
}

func TestRun_RefusesBadConfiguration(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	err := run(context.Background(), nil, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--database-url (or DATABASE_URL) is required")

	t.Setenv("DATASTORAGE_RATE_LIMIT", "fast")
	err = run(context.Background(), nil, io.Discard, io.Discard)
	require.ErrorContains(t, err, "DATASTORAGE_RATE_LIMIT")
}

func TestMigrate_AppliesTheSchemaAndExits(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate", "--database-url", dsn}, &out, io.Discard))
	require.NoError(t, run(context.Background(), []string{"migrate", "--database-url", dsn}, &out, io.Discard), "idempotent")

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, table := range []string{"remediation_audit", "workflow_audit", "central_replicas"} {
		var exists bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		assert.True(t, exists, table)
	}
}

// TestMain removes the binaries built for the process tests.
func TestMain(m *testing.M) { harness.Main(m) }

// process is a central running as a child process.
type process struct {
	*harness.Process
	api, metrics string
	dsn          string // its database
}

// startCentral runs the built binary with static tokens "t-gw" (gateway-sa)
// and "t-out" (a service account that may write nothing) and a fresh
// database; extra args are appended. It does not wait for readiness: the
// caller knows the scheme and the client (waitReady).
func startCentral(t *testing.T, extra ...string) *process {
	t.Helper()
	return startCentralOn(t, pgtest.NewDatabase(t), extra...)
}

// startCentralOn is startCentral on the database dsn, which several
// centrals may share (replicas).
func startCentralOn(t *testing.T, dsn string, extra ...string) *process {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	require.NoError(t, os.WriteFile(tokens,
		[]byte("t-gw,system:serviceaccount:kubernaut-system:gateway-sa,uid-1,\"system:serviceaccounts\"\n"+
			"t-out,system:serviceaccount:kubernaut-system:outsider,uid-2\n"), 0o600))
	p := &process{api: freeport.Addr(t), metrics: freeport.Addr(t), dsn: dsn}
	p.Process = harness.StartTB(t, harness.Command{Name: "central", Path: harness.BuildOnce(t).Central,
		Args: append([]string{"serve", "--listen", p.api, "--metrics-listen", p.metrics,
			"--auth", "static", "--token-file", tokens}, extra...),
		Env: []string{"DATABASE_URL=" + p.dsn}})
	return p
}

// waitReady polls /readyz through client until the central answers 200.
func (p *process) waitReady(t *testing.T, client *http.Client, url string) {
	t.Helper()
	require.NoError(t, p.WaitReady(t.Context(), url+"/readyz", client, 30*time.Second), "central never became ready")
}

func writeAudit(client *http.Client, url string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/audit/remediation",
		strings.NewReader(`{"remediationRequestID":"rr-1","alertName":"HighMemoryUsage"}`))
	req.Header.Set("Authorization", "Bearer t-gw")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// TestServe_RealBinary runs the built central as a process: static tokens, a
// write, metrics, and a graceful exit on SIGTERM.
func TestServe_RealBinary(t *testing.T) {
	p := startCentral(t)
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)

	status, body, err := writeAudit(http.DefaultClient, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)

	resp, err := http.Get("http://" + p.metrics + "/metrics")
	require.NoError(t, err)
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(metricsText), "datastorage_db_pool_max_conns")

	// A clean exit within 30 s (after that it is killed, and that is an error).
	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM: %s", p.Logs())
	assert.NotContains(t, p.Logs(), "t-gw", "tokens are never logged")
}

// TestServe_TLSWithClientCertificatesAndRotation serves the API over TLS
// with certificates made in the test, requires client certificates, and
// picks up a rotated server certificate without a restart.
func TestServe_TLSWithClientCertificatesAndRotation(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testcerts.NewCA(t, "server-ca"), testcerts.NewCA(t, "client-ca")
	certFile, keyFile := serverCA.Server(t).WriteFiles(t, dir, "tls")
	clientCAFile := filepath.Join(dir, "client-ca.crt")
	require.NoError(t, os.WriteFile(clientCAFile, clientCA.CertPEM, 0o600))
	p := startCentral(t, "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--client-ca-file", clientCAFile)
	url := "https://" + p.api

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.CertPEM)
	clientLeaf := clientCA.Client(t, "gateway")
	clientCert, err := tls.X509KeyPair(clientLeaf.CertPEM, clientLeaf.KeyPEM)
	require.NoError(t, err)
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	}
	trusted := client(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}})
	p.waitReady(t, trusted, url)

	status, body, err := writeAudit(trusted, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)

	_, _, err = writeAudit(client(&tls.Config{Certificates: []tls.Certificate{clientCert}}), url)
	require.Error(t, err, "a client that does not trust the server's CA is refused")
	assert.Contains(t, err.Error(), "certificate")

	_, _, err = writeAudit(client(&tls.Config{RootCAs: roots}), url)
	require.Error(t, err, "a client without a certificate is refused")

	_, _, err = writeAudit(http.DefaultClient, "http://"+p.api)
	require.Error(t, err, "plain HTTP is not served on the TLS port")

	// The operator's commands present a client certificate too: with it they
	// reach the API (which refuses gateway-sa legal holds), without it the
	// handshake fails.
	operatorCert, operatorKey := clientLeaf.WriteFiles(t, dir, "operator")
	serverCAFile := filepath.Join(dir, "server-ca.crt")
	require.NoError(t, os.WriteFile(serverCAFile, serverCA.CertPEM, 0o600))
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("t-gw"), 0o600))
	holdsList := []string{"holds", "list", "--central-url", url, "--token-file", tokenFile, "--ca-file", serverCAFile}
	status, _, stderr := runCentral(t, nil, append(holdsList, "--client-cert-file", operatorCert, "--client-key-file", operatorKey)...)
	assert.Equal(t, 1, status)
	assert.Contains(t, stderr, "403", "through TLS to the API's own refusal")
	status, _, stderr = runCentral(t, nil, holdsList...)
	assert.Equal(t, 1, status)
	assert.NotContains(t, stderr, "403", "refused in the handshake")

	rotated := serverCA.Server(t)
	rotated.WriteFiles(t, dir, "tls")
	require.Eventually(t, func() bool {
		conn, err := tls.Dial("tcp", p.api, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(rotated.Serial) == 0
	}, 10*time.Second, 100*time.Millisecond, "the rotated certificate is served without a restart")
}

// TestServe_RefusedBodiesCostNoMemory sends rounds of a dozen parallel 16 MiB
// batches that the central refuses from their headers (no token, an unknown
// token, a writer of no kind), and reads the process's resident memory
// before and after: a refused body is not read, so memory stays flat (before
// bodies were streamed it grew from 56 to 213 MiB and stayed there).
func TestServe_RefusedBodiesCostNoMemory(t *testing.T) {
	p := startCentral(t)
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	status, body, err := writeAudit(http.DefaultClient, url) // warm up the write path
	require.NoError(t, err)
	require.Equal(t, 201, status, body)
	before := rssBytes(t, p.Pid())

	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for round, auth := range []string{"", "Authorization: Bearer no-such-token\r\n", "Authorization: Bearer t-out\r\n"} {
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				conn, err := net.Dial("tcp", p.api)
				if err != nil {
					return
				}
				defer conn.Close()
				fmt.Fprintf(conn, "POST /api/v1/audit/batch HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
					auth, 16<<20)
				// Send the whole body, as a client would, until the server
				// hangs up on it.
				for range 16 {
					if _, err := conn.Write(chunk); err != nil {
						return
					}
				}
				_, _ = io.Copy(io.Discard, conn)
			})
		}
		start := time.Now()
		wg.Wait()
		t.Logf("round %d: RSS %d MiB (%s)", round+1, rssBytes(t, p.Pid())>>20, time.Since(start).Round(time.Millisecond))
	}
	after := rssBytes(t, p.Pid())
	t.Logf("RSS before %d MiB, after %d MiB", before>>20, after>>20)
	assert.Less(t, after-before, int64(32<<20), "36 refused 16 MiB bodies grew the central by %d MiB", (after-before)>>20)
}

// rssBytes is a process's resident set size (VmRSS in /proc/PID/status).
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

func TestRun_RefusesBadLifecycleSettings(t *testing.T) {
	for args, want := range map[string]string{
		"--retention remediation=10":                "the shortest is 30 days",
		"--retention remediation=forever":           "want kind=days",
		"--retention incident=365":                  `unknown kind "incident"`,
		"--retention remediation=40,remediation=50": "remediation given twice",
		"--partition-period year":                   `partition period "year"`,
		"--partitions-ahead 0":                      "--partitions-ahead must be at least 1",
		"--partition-check-interval 0s":             "--partition-check-interval must be positive",
	} {
		err := run(context.Background(), append([]string{"maintain", "--database-url", "postgres://unused"}, strings.Fields(args)...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, want, args)
	}
}

func TestMaintain_CreatesThePartitionsAheadAndExits(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var out bytes.Buffer
	args := []string{"maintain", "--database-url", dsn, "--partition-period", "day", "--partitions-ahead", "3", "--retention", "workflow=30"}
	require.NoError(t, run(context.Background(), args, &out, io.Discard))
	assert.Contains(t, out.String(), "partitions and retention up to date")

	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	defer db.Close()
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		parts, err := db.Partitions(context.Background(), kind)
		require.NoError(t, err)
		newest := parts[len(parts)-1]
		// Up to the end of the third day after the one a write may reach (24 h ahead).
		want := storage.PeriodDay.Start(time.Now().Add(wire.MaxFutureSkew)).AddDate(0, 0, 4)
		assert.False(t, newest.To.Before(want), "%s: newest partition ends %s, want at least %s", kind, newest.To, want)
	}
	require.NoError(t, run(context.Background(), args, &out, io.Discard), "idempotent")

	assert.Zero(t, replicaRows(t, dsn), "maintain is not a serving replica: it does not count")
}

// --embed-workers 0 is a write-only replica: records are stored and their
// backlog entries wait, embedded by none.
func TestServe_EmbedWorkersZeroEmbedsNothing(t *testing.T) {
	p := startCentral(t, "--embed-workers", "0")
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	status, body, err := writeAudit(http.DefaultClient, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)

	conn, err := pgx.Connect(t.Context(), p.dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	time.Sleep(time.Second) // a worker, were there one, embeds within milliseconds
	var backlog, links int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM embedding_outbox), (SELECT count(*) FROM audit_embeddings)`).Scan(&backlog, &links))
	assert.Equal(t, 1, backlog)
	assert.Zero(t, links)
	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM: %s", p.Logs())
	assert.Contains(t, p.Logs(), `"embed_workers":0`)
}

// The HNSW index is built in the background, because a build over many
// stored vectors (after migration 0011) outlasts a liveness probe. With the
// build held up (its advisory lock taken here), the central is ready and
// stores records, and a SIGTERM stops it at once; started again and let
// build, it makes the index and embeds the record.
func TestServe_ServesWhileTheVectorIndexIsBuilt(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	const lockKey = `hashtext('datastorage.embeddings.hnsw')` // EnsureIndex's lock
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`)
	require.NoError(t, err)
	indexes := func() (n int) {
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_embeddings_embedding_hnsw'`).Scan(&n))
		return n
	}

	p := startCentralOn(t, dsn)
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	status, body, err := writeAudit(http.DefaultClient, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)
	assert.Zero(t, indexes(), "not built yet")
	start := time.Now()
	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM mid-build: %s", p.Logs())
	assert.Less(t, time.Since(start), 10*time.Second, "the build waited for is given up at once")
	assert.NotContains(t, p.Logs(), "HNSW index ready")

	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock(`+lockKey+`)`)
	require.NoError(t, err)
	p = startCentralOn(t, dsn)
	p.waitReady(t, http.DefaultClient, "http://"+p.api)
	require.Eventually(t, func() bool {
		var links int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM audit_embeddings`).Scan(&links))
		return indexes() == 1 && links == 1
	}, 30*time.Second, 100*time.Millisecond, "the index is built and the record embedded: %s", p.Logs())
	assert.Contains(t, p.Logs(), "HNSW index ready")
	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), "exit after SIGTERM: %s", p.Logs())
}

// TestServe_StaticTokenFileIsReadAgainWhenItChanges: a token added to the
// file authenticates without a restart, a removed one no longer does.
func TestServe_StaticTokenFileIsReadAgainWhenItChanges(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	require.NoError(t, os.WriteFile(tokens, []byte("t-gw,system:serviceaccount:kubernaut-system:gateway-sa,uid-1\n"), 0o600))
	p := startCentral(t, "--token-file", tokens) // the last --token-file wins
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	status, body, err := writeAudit(http.DefaultClient, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)

	// Rotated: t-gw replaced by t-gw-2, written beside and renamed over.
	require.NoError(t, os.WriteFile(tokens+".new", []byte("t-gw-2,system:serviceaccount:kubernaut-system:gateway-sa,uid-1\n"), 0o600))
	require.NoError(t, os.Rename(tokens+".new", tokens))
	require.Eventually(t, func() bool {
		status, _, err := writeAudit(http.DefaultClient, url)
		return err == nil && status == 401
	}, 10*time.Second, 100*time.Millisecond, "the old token refused")
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/audit/remediation",
		strings.NewReader(`{"remediationRequestID":"rr-2"}`))
	req.Header.Set("Authorization", "Bearer t-gw-2")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 201, resp.StatusCode, "the new token accepted")
}
