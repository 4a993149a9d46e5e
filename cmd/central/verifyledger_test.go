package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ledgerKeys writes a checkpoint signing key and its public key as openssl
// writes them.
func ledgerKeys(t *testing.T) (private, public string) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	private = filepath.Join(dir, "checkpoint.key")
	require.NoError(t, os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	der, err = x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	public = filepath.Join(dir, "checkpoint.pub")
	require.NoError(t, os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return private, public
}

// ledgerVerify runs the built `central verify` with args.
func ledgerVerify(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	return runCentral(t, nil, append([]string{"verify"}, args...)...)
}

// TestVerify_TheTrailACentralWroteAgainstItsCheckpointFile runs a central
// that signs checkpoints to a file, then `central verify` on its database
// with that file: whole, then with a row deleted behind its back.
func TestVerify_TheTrailACentralWroteAgainstItsCheckpointFile(t *testing.T) {
	key, pub := ledgerKeys(t)
	checkpoints := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	p := startCentral(t, "--checkpoint-key-file", key, "--checkpoint-file", checkpoints,
		"--ledger-sequence-interval", "50ms", "--checkpoint-interval", "200ms")
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	for range 3 {
		status, body, err := writeAudit(http.DefaultClient, url)
		require.NoError(t, err)
		require.Equal(t, 201, status, body)
	}
	require.NoError(t, p.Stop(syscall.SIGTERM, 30*time.Second), p.Logs())
	assert.Contains(t, p.Logs(), `"message":"ledger checkpoint"`)

	status, stdout, stderr := ledgerVerify(t, "--database-url", p.dsn, "--checkpoints", checkpoints, "--public-key", pub)
	require.Equal(t, 0, status, stderr)
	assert.Regexp(t, `^ledger verified: entries 0 to 3 of 3 \(4\), 3 rows .* [1-9][0-9]* checkpoints; head 3 [0-9a-f]{64}\n$`, stdout)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET session_replication_role = replica")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "DELETE FROM remediation_audit WHERE id = (SELECT min(id) FROM remediation_audit)")
	require.NoError(t, err)
	status, _, stderr = ledgerVerify(t, "--database-url", p.dsn, "--checkpoints", checkpoints, "--public-key", pub)
	assert.Equal(t, 1, status)
	assert.Contains(t, stderr, "deleted at seq")
	assert.Contains(t, stderr, "the ledger does not verify: 1 failures")
}

// TestServe_VerifyEndpointHoldsTheChainAgainstTheCheckpointFile: the
// endpoint reads the checkpoints this replica signed (its file and the
// database's copies, those its key accepts).
func TestServe_VerifyEndpointHoldsTheChainAgainstTheCheckpointFile(t *testing.T) {
	key, _ := ledgerKeys(t)
	dir := t.TempDir()
	checkpoints := filepath.Join(dir, "checkpoints.jsonl")
	authzFile := filepath.Join(dir, "authz.yaml")
	// The outsider of startCentral's tokens, made the auditor.
	require.NoError(t, os.WriteFile(authzFile, []byte(`serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: outsider, namespace: kubernaut-system, actions: [verify:ledger]}
`), 0o600))
	p := startCentral(t, "--authz-file", authzFile, "--checkpoint-key-file", key, "--checkpoint-file", checkpoints,
		"--ledger-sequence-interval", "50ms", "--checkpoint-interval", "100ms")
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	status, body, err := writeAudit(http.DefaultClient, url)
	require.NoError(t, err)
	require.Equal(t, 201, status, body)
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(checkpoints)
		return err == nil && strings.Contains(string(data), `"seq":1,`)
	}, 10*time.Second, 50*time.Millisecond, "a checkpoint of the write's entry")

	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/ledger/verify", nil)
	req.Header.Set("Authorization", "Bearer t-out")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	var report struct {
		OK          bool  `json:"ok"`
		Rows        int64 `json:"rows"`
		Checkpoints int   `json:"checkpoints"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&report))
	assert.True(t, report.OK)
	assert.EqualValues(t, 1, report.Rows)
	assert.GreaterOrEqual(t, report.Checkpoints, 2, "from the file and from the database")
}

// TestVerifyExport_ChecksTheLedgerProofOfARealCentralsExport: a central
// with both keys exports with the proof, and verify-export checks the
// export key's signature and the proof against the checkpoint key.
func TestVerifyExport_ChecksTheLedgerProofOfARealCentralsExport(t *testing.T) {
	exportKey, exportPub := ledgerKeys(t)
	checkpointKey, checkpointPub := ledgerKeys(t)
	dir := t.TempDir()
	authzFile := filepath.Join(dir, "authz.yaml")
	require.NoError(t, os.WriteFile(authzFile, []byte(`serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation, export:audit]}
`), 0o600))
	p := startCentral(t, "--authz-file", authzFile, "--export-key-file", exportKey, "--checkpoint-key-file", checkpointKey)
	url := "http://" + p.api
	p.waitReady(t, http.DefaultClient, url)
	for range 3 {
		status, body, err := writeAudit(http.DefaultClient, url)
		require.NoError(t, err)
		require.Equal(t, 201, status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer t-gw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	file := filepath.Join(dir, "export.ndjson")
	out, err := os.Create(file)
	require.NoError(t, err)
	_, err = io.Copy(out, resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.Equal(t, 200, resp.StatusCode)

	status, stdout, stderr := runCentral(t, nil, "verify-export", file, "--public-key", exportPub, "--checkpoint-public-key", checkpointPub)
	require.Equal(t, 0, status, stderr)
	assert.Contains(t, stdout, "ledger proof: 3 records in 3 entries up to checkpoint 3")
	status, _, stderr = runCentral(t, nil, "verify-export", file, "--public-key", exportPub, "--checkpoint-public-key", exportPub)
	assert.Equal(t, 1, status, "the export key is not the checkpoint key")
	assert.Contains(t, stderr, "signed by key")
	status, _, _ = runCentral(t, nil, "verify-export", "-", "--public-key", exportPub, "--checkpoint-public-key", checkpointPub)
	assert.Equal(t, 2, status, "standard input cannot be read twice")
}

func TestVerify_UsageErrorsExitTwo(t *testing.T) {
	_, pub := ledgerKeys(t)
	for name, args := range map[string][]string{
		"no database":                   {"--database-url", ""},
		"checkpoints without their key": {"--database-url", "postgres://x/y", "--checkpoints", pub},
		"an argument":                   {"--database-url", "postgres://x/y", "extra"},
		"a range backwards":             {"--database-url", "postgres://x/y", "--from", "5", "--through", "2"},
		"an unknown flag":               {"--database-url", "postgres://x/y", "--frm", "5"},
	} {
		status, _, stderr := ledgerVerify(t, args...)
		assert.Equal(t, 2, status, "%s: %s", name, stderr)
	}
	status, _, stderr := ledgerVerify(t, "--database-url", "postgres://x/y", "--checkpoints", pub, "--public-key", pub)
	assert.Equal(t, 1, status, "a checkpoint file that is not one")
	assert.Contains(t, stderr, "checkpoint line 1")
}
