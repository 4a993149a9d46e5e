package tlsconfig_test

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
)

func TestReloadingClient_TrustsARotatedCAWithoutRestart(t *testing.T) {
	oldCA := testcerts.NewCA(t, "old-ca")
	first := oldCA.Server(t)
	secret := newSecretDir(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM, "ca.crt": oldCA.CertPEM})
	srv, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{CertFile: secret.path("tls.crt"),
		KeyFile: secret.path("tls.key"), CheckInterval: time.Millisecond})
	require.NoError(t, err)
	url := serveNetHTTP(t, srv)
	var errs errorSink
	client, err := tlsconfig.ReloadingClient(secret.path("ca.crt"), "127.0.0.1", 10*time.Millisecond, errs.add)
	require.NoError(t, err)
	assert.Equal(t, first.Serial, mustGet(t, url, client))

	// The CA is replaced, and the server's certificate with one it issued.
	newCA := testcerts.NewCA(t, "new-ca")
	next := newCA.Server(t)
	secret.update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM, "ca.crt": newCA.CertPEM})
	require.Eventually(t, func() bool {
		serial, err := get(t, url, client)
		return err == nil && serial.Cmp(next.Serial) == 0
	}, 5*time.Second, 20*time.Millisecond, "the rotated CA is trusted without a new client")

	// A broken replacement keeps the bundle in use and is reported once.
	secret.update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM, "ca.crt": []byte("not PEM")})
	for range 3 {
		time.Sleep(15 * time.Millisecond)
		assert.Equal(t, next.Serial, mustGet(t, url, client))
	}
	require.Len(t, errs.all(), 1)
	assert.ErrorIs(t, errs.all()[0], tlsconfig.ErrNoCertificates)
}

func TestReloadingClient_VerifiesTheChainAndTheServerName(t *testing.T) {
	f := newFixture(t)
	srv, err := tlsconfig.Server(t.Context(), f.secret.path("tls.crt"), f.secret.path("tls.key"), "", nil)
	require.NoError(t, err)
	url := serveNetHTTP(t, srv)

	byName, err := tlsconfig.ReloadingClient(f.secret.path("ca.crt"), "localhost", 0, nil)
	require.NoError(t, err)
	assert.Equal(t, f.first.Serial, mustGet(t, url, byName), "a DNS name in the certificate")

	wrongName, err := tlsconfig.ReloadingClient(f.secret.path("ca.crt"), "central.example", 0, nil)
	require.NoError(t, err)
	_, err = get(t, url, wrongName)
	var hostname x509.HostnameError
	assert.ErrorAs(t, err, &hostname, "a name the certificate does not hold is refused")

	otherCA := testcerts.NewCA(t, "other-ca")
	wrongCA, err := tlsconfig.ReloadingClient(writeFile(t, t.TempDir(), "ca.crt", otherCA.CertPEM), "127.0.0.1", 0, nil)
	require.NoError(t, err)
	_, err = get(t, url, wrongCA)
	var unknown x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &unknown, "another CA does not vouch for the server")

	_, err = tlsconfig.ReloadingClient(f.secret.path("ca.crt"), "", 0, nil)
	assert.Error(t, err, "no server name")
	_, err = tlsconfig.ReloadingClient(writeFile(t, t.TempDir(), "bad.crt", []byte("not PEM")), "localhost", 0, nil)
	assert.True(t, errors.Is(err, tlsconfig.ErrNoCertificates), "CA file without certificates: %v", err)
}
