package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/internal/tstest/secretvol"
	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
)

// TestIntegration_MutualTLSWithARotatedClientCertificate runs an agent
// against a real central that requires client certificates
// (--client-ca-file): without one nothing is delivered and nothing is lost;
// with one from the central's client CA, mounted like a Secret, everything
// arrives exactly once, also after cert-manager has renewed it and the old
// certificate has expired.
func TestIntegration_MutualTLSWithARotatedClientCertificate(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	serverCA, clientCA := testcerts.NewCA(t, "central-ca"), testcerts.NewCA(t, "agent-client-ca")
	central := startMTLSCentral(t, dsn, tokenCSV(1), serverCA, clientCA)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, serverCA.CertPEM, 0o600))
	token, dataDir := writeToken(t, 1), t.TempDir()
	client := &http.Client{Timeout: 10 * time.Second}
	w := newWriter("mtls")

	// No client certificate: the handshake fails, the agent keeps the
	// records and retries.
	a := startIntegrationAgent(t, dataDir, central.url(), token, "--central-ca-file", caFile, "--shutdown-grace", "200ms")
	for i := range 10 {
		require.Equal(t, http.StatusCreated, w.post(t, client, a.listen, 0, i))
	}
	require.Eventually(t, func() bool {
		return a.metric(t, `agent_forward_errors_total{class="network"}`) >= 2
	}, 10*time.Second, 20*time.Millisecond, "the handshake without a client certificate should fail, and be retried")
	require.EqualValues(t, 10, a.metric(t, "agent_queue_buffered_records"), "the refused records stay buffered")
	require.Empty(t, storedIDs(t, dsn), "nothing reached the central without a client certificate")
	a.term(t)

	// A client certificate from the CA the central trusts, short-lived so
	// that only its successor is accepted later: the buffered records and
	// new ones arrive exactly once.
	const lifetime = 8 * time.Second
	first, expires := clientCA.ClientValidFor(t, "gateway-sa", lifetime), time.Now().Add(lifetime)
	secret := secretvol.New(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM})
	a = startIntegrationAgent(t, dataDir, central.url(), token, "--central-ca-file", caFile,
		"--client-cert-file", secret.Path("tls.crt"), "--client-key-file", secret.Path("tls.key"))
	for i := range 10 {
		require.Equal(t, http.StatusCreated, w.post(t, client, a.listen, 1, i))
	}
	w.requireExactlyOnce(t, dsn, true)

	// cert-manager renews the certificate (same CA, new key) and the kubelet
	// swaps the Secret's files. Once the first certificate has expired and
	// the central has restarted (every connection is new), forwarding works
	// only with the renewed one.
	renewed := clientCA.Client(t, "gateway-sa")
	secret.Update(map[string][]byte{"tls.crt": renewed.CertPEM, "tls.key": renewed.KeyPEM})
	time.Sleep(time.Until(expires) + time.Second)
	central.stop(t, syscall.SIGTERM)
	central.start(t)
	for i := range 10 {
		require.Equal(t, http.StatusCreated, w.post(t, client, a.listen, 2, i))
	}
	w.requireExactlyOnce(t, dsn, true)
	require.Zero(t, a.metric(t, "agent_queue_buffered_records"))
	a.term(t)
}
