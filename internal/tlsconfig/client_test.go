package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/internal/tstest/secretvol"
	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
)

func TestReloadingClient_TrustsARotatedCAWithoutRestart(t *testing.T) {
	oldCA := testcerts.NewCA(t, "old-ca")
	first := oldCA.Server(t)
	secret := secretvol.New(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM, "ca.crt": oldCA.CertPEM})
	srv, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{CertFile: secret.Path("tls.crt"),
		KeyFile: secret.Path("tls.key"), CheckInterval: time.Millisecond})
	require.NoError(t, err)
	url := serveNetHTTP(t, srv)
	var errs errorSink
	client, err := tlsconfig.ReloadingClient(secret.Path("ca.crt"), "127.0.0.1", 10*time.Millisecond, errs.add)
	require.NoError(t, err)
	assert.Equal(t, first.Serial, mustGet(t, url, client))

	// The CA is replaced, and the server's certificate with one it issued.
	newCA := testcerts.NewCA(t, "new-ca")
	next := newCA.Server(t)
	secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM, "ca.crt": newCA.CertPEM})
	require.Eventually(t, func() bool {
		serial, err := get(t, url, client)
		return err == nil && serial.Cmp(next.Serial) == 0
	}, 5*time.Second, 20*time.Millisecond, "the rotated CA is trusted without a new client")

	// A broken replacement keeps the bundle in use and is reported once.
	secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM, "ca.crt": []byte("not PEM")})
	for range 3 {
		time.Sleep(15 * time.Millisecond)
		assert.Equal(t, next.Serial, mustGet(t, url, client))
	}
	require.Len(t, errs.all(), 1)
	assert.ErrorIs(t, errs.all()[0], tlsconfig.ErrNoCertificates)
}

func TestReloadingClient_VerifiesTheChainAndTheServerName(t *testing.T) {
	f := newFixture(t)
	srv, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"), "", nil)
	require.NoError(t, err)
	url := serveNetHTTP(t, srv)

	byName, err := tlsconfig.ReloadingClient(f.secret.Path("ca.crt"), "localhost", 0, nil)
	require.NoError(t, err)
	assert.Equal(t, f.first.Serial, mustGet(t, url, byName), "a DNS name in the certificate")

	wrongName, err := tlsconfig.ReloadingClient(f.secret.Path("ca.crt"), "central.example", 0, nil)
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

	_, err = tlsconfig.ReloadingClient(f.secret.Path("ca.crt"), "", 0, nil)
	assert.Error(t, err, "no server name")
	_, err = tlsconfig.ReloadingClient(writeFile(t, t.TempDir(), "bad.crt", []byte("not PEM")), "localhost", 0, nil)
	assert.True(t, errors.Is(err, tlsconfig.ErrNoCertificates), "CA file without certificates: %v", err)
}

// clientCertFixture is a server that requires client certificates from
// clientCA and answers with the serial of the one presented, and a client
// whose certificate and key live in a Secret-like directory.
type clientCertFixture struct {
	clientCA *testcerts.CA
	secret   *secretvol.Dir
	first    testcerts.Leaf
	clock    *clock
	errs     *errorSink
	client   *tls.Config
	url      string
	seen     atomic.Pointer[big.Int] // serial of the last client certificate the server saw
}

func newClientCertFixture(t *testing.T) *clientCertFixture {
	t.Helper()
	f := newFixture(t)
	clientCA := testcerts.NewCA(t, "client-ca")
	srv, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"),
		writeFile(t, t.TempDir(), "client-ca.crt", clientCA.CertPEM), nil)
	require.NoError(t, err)
	first := clientCA.Client(t, "datastorage-agent")
	c := &clientCertFixture{clientCA: clientCA, first: first, clock: newClock(), errs: &errorSink{},
		secret: secretvol.New(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM})}
	snapshot := srv.GetConfigForClient
	srv.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		snap, err := snapshot(hello)
		if err != nil {
			return nil, err
		}
		snap = snap.Clone()
		snap.VerifyConnection = func(cs tls.ConnectionState) error {
			c.seen.Store(cs.PeerCertificates[0].SerialNumber) // verified: there is one
			return nil
		}
		return snap, nil
	}
	c.url = serveNetHTTP(t, srv)
	c.client, err = tlsconfig.NewClient(tlsconfig.ClientConfig{ServerName: "localhost", CAFile: f.secret.Path("ca.crt"),
		CertFile: c.secret.Path("tls.crt"), KeyFile: c.secret.Path("tls.key"), OnError: c.errs.add, Now: c.clock.Now})
	require.NoError(t, err)
	return c
}

// presented makes a request after the check interval has passed (or not,
// with wait false) and returns the serial of the client certificate the
// server saw.
func (c *clientCertFixture) presented(t *testing.T, wait bool) *big.Int {
	t.Helper()
	if wait {
		c.clock.AdvancePast(tlsconfig.DefaultCheckInterval)
	}
	c.seen.Store(nil)
	mustGet(t, c.url, c.client)
	return c.seen.Load()
}

func TestNewClient_PresentsARotatedClientCertificateWithoutRestart(t *testing.T) {
	c := newClientCertFixture(t)
	assert.Equal(t, c.first.Serial, c.presented(t, false))

	next := c.clientCA.Client(t, "datastorage-agent")
	c.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM})
	assert.Equal(t, c.first.Serial, c.presented(t, false), "not before the check interval")
	assert.Equal(t, next.Serial, c.presented(t, true), "the rotated pair after it")
	assert.Empty(t, c.errs.all())
}

func TestNewClient_BadClientCertificateKeepsTheLastGoodPairAndReportsOnce(t *testing.T) {
	c := newClientCertFixture(t)
	next := c.clientCA.Client(t, "datastorage-agent")

	// A half-written certificate.
	c.secret.Update(map[string][]byte{"tls.crt": next.CertPEM[:len(next.CertPEM)/2], "tls.key": next.KeyPEM})
	for range 3 {
		assert.Equal(t, c.first.Serial, c.presented(t, true))
	}
	require.Len(t, c.errs.all(), 1, "the same bad contents are reported once")
	assert.ErrorContains(t, c.errs.all()[0], "keeping the previous one")

	// A missing key.
	require.NoError(t, removeFile(c.secret.Path("tls.key")))
	for range 2 {
		assert.Equal(t, c.first.Serial, c.presented(t, true))
	}
	require.Len(t, c.errs.all(), 2)
	assert.ErrorContains(t, c.errs.all()[1], "read client key")

	// Whole again: the new pair is presented.
	require.NoError(t, os.Symlink(filepath.Join("..data", "tls.key"), c.secret.Path("tls.key")))
	c.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM})
	assert.Equal(t, next.Serial, c.presented(t, true))
	assert.Len(t, c.errs.all(), 2)
}

func TestNewClient_RefusesAClientCertificateWithAnotherKey(t *testing.T) {
	c := newClientCertFixture(t)
	next, other := c.clientCA.Client(t, "datastorage-agent"), c.clientCA.Client(t, "datastorage-agent")

	// The certificate of one pair with the key of another (a read between
	// two writes) is never presented: the server would refuse the handshake.
	c.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": other.KeyPEM})
	assert.Equal(t, c.first.Serial, c.presented(t, true))
	require.Len(t, c.errs.all(), 1)
	assert.ErrorContains(t, c.errs.all()[0], "private key does not match public key")

	_, err := tlsconfig.NewClient(tlsconfig.ClientConfig{ServerName: "localhost",
		CertFile: writeFile(t, t.TempDir(), "a.crt", next.CertPEM), KeyFile: writeFile(t, t.TempDir(), "a.key", other.KeyPEM)})
	assert.ErrorContains(t, err, "private key does not match public key", "at start as well")
	_, err = tlsconfig.NewClient(tlsconfig.ClientConfig{ServerName: "localhost", CertFile: c.secret.Path("tls.crt")})
	assert.ErrorContains(t, err, "both a certificate and a key file")
}
