package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/internal/tstest/secretvol"

	"github.com/kubernaut/datastorage/internal/tstest/testcerts"
)

func TestMain(m *testing.M) {
	// The package starts no goroutine; fasthttp's server worker pool and
	// client cleaners linger for seconds after Shutdown by design.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// fixture is a CA, a server certificate in a Secret-like directory, and a
// client config trusting the CA.
type fixture struct {
	ca     *testcerts.CA
	secret *secretvol.Dir
	first  testcerts.Leaf
	client *tls.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	authority := testcerts.NewCA(t, "test-ca")
	first := authority.Server(t)
	secret := secretvol.New(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM, "ca.crt": authority.CertPEM})
	client, err := tlsconfig.Client(secret.Path("ca.crt"), "", "")
	require.NoError(t, err)
	return &fixture{ca: authority, secret: secret, first: first, client: client}
}

func (f *fixture) rotate(t *testing.T) testcerts.Leaf {
	t.Helper()
	next := f.ca.Server(t)
	f.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM, "ca.crt": f.ca.CertPEM})
	return next
}

func TestServer_AnswersClientTrustingItsCA(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			cfg, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"), "", nil)
			require.NoError(t, err)
			assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)

			url := s.serve(t, cfg)
			assert.Equal(t, f.first.Serial, mustGet(t, url, f.client))
		})
	}
}

func TestServer_PresentsReplacedCertificateWithoutRestart(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			clk := newClock()
			var reloaded []*x509.Certificate
			cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{
				CertFile: f.secret.Path("tls.crt"),
				KeyFile:  f.secret.Path("tls.key"),
				OnReload: func(c *x509.Certificate) { reloaded = append(reloaded, c) },
				OnError:  func(err error) { t.Errorf("unexpected reload error: %v", err) },
				Now:      clk.Now,
			})
			require.NoError(t, err)
			url := s.serve(t, cfg)
			require.Equal(t, f.first.Serial, mustGet(t, url, f.client))

			second := f.rotate(t)
			clk.AdvancePast(tlsconfig.DefaultCheckInterval)
			assert.Equal(t, second.Serial, mustGet(t, url, f.client), "first handshake after the interval")
			require.Len(t, reloaded, 1)
			assert.Equal(t, second.Serial, reloaded[0].SerialNumber)

			third := f.rotate(t)
			clk.AdvancePast(tlsconfig.DefaultCheckInterval)
			assert.Equal(t, third.Serial, mustGet(t, url, f.client))
		})
	}
}

func TestServer_ReloadsRegularFilesReplacedInPlace(t *testing.T) {
	authority := testcerts.NewCA(t, "test-ca")
	first, second := authority.Server(t), authority.Server(t)
	dir := t.TempDir()
	certFile := writeFile(t, dir, "tls.crt", first.CertPEM)
	keyFile := writeFile(t, dir, "tls.key", first.KeyPEM)
	client, err := tlsconfig.Client(writeFile(t, dir, "ca.crt", authority.CertPEM), "", "")
	require.NoError(t, err)
	clk := newClock()
	cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{CertFile: certFile, KeyFile: keyFile, Now: clk.Now})
	require.NoError(t, err)
	url := serveNetHTTP(t, cfg)
	require.Equal(t, first.Serial, mustGet(t, url, client))

	writeFile(t, dir, "tls.crt", second.CertPEM)
	writeFile(t, dir, "tls.key", second.KeyPEM)
	clk.AdvancePast(tlsconfig.DefaultCheckInterval)
	assert.Equal(t, second.Serial, mustGet(t, url, client))
}

func TestServer_DoesNotRereadFilesBeforeCheckInterval(t *testing.T) {
	f := newFixture(t)
	clk := newClock()
	cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{
		CertFile:      f.secret.Path("tls.crt"),
		KeyFile:       f.secret.Path("tls.key"),
		CheckInterval: time.Minute,
		Now:           clk.Now,
	})
	require.NoError(t, err)
	url := serveNetHTTP(t, cfg)

	second := f.rotate(t)
	clk.Advance(time.Minute - time.Second)
	assert.Equal(t, f.first.Serial, mustGet(t, url, f.client), "interval not yet over")
	clk.Advance(2 * time.Second)
	assert.Equal(t, second.Serial, mustGet(t, url, f.client), "interval over")
}

func TestServer_CorruptReplacementKeepsOldCertificateAndReportsOnce(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			clk := newClock()
			sink := &errorSink{}
			cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{
				CertFile: f.secret.Path("tls.crt"),
				KeyFile:  f.secret.Path("tls.key"),
				OnError:  sink.add,
				Now:      clk.Now,
			})
			require.NoError(t, err)
			url := s.serve(t, cfg)

			// A half-written certificate: the first half of a new PEM block.
			next := f.ca.Server(t)
			f.secret.Update(map[string][]byte{"tls.crt": next.CertPEM[:len(next.CertPEM)/2], "tls.key": next.KeyPEM})
			for range 3 {
				clk.AdvancePast(tlsconfig.DefaultCheckInterval)
				assert.Equal(t, f.first.Serial, mustGet(t, url, f.client), "old certificate still served")
			}
			errs := sink.all()
			require.Len(t, errs, 1, "the same bad contents are reported once")
			assert.ErrorContains(t, errs[0], "keeping the previous certificate")

			// A key that does not match the certificate is refused as well.
			other := f.ca.Server(t)
			f.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": other.KeyPEM})
			clk.AdvancePast(tlsconfig.DefaultCheckInterval)
			assert.Equal(t, f.first.Serial, mustGet(t, url, f.client))
			assert.Len(t, sink.all(), 2)

			// Once the files are whole again, the new certificate is served.
			f.secret.Update(map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM})
			clk.AdvancePast(tlsconfig.DefaultCheckInterval)
			assert.Equal(t, next.Serial, mustGet(t, url, f.client))
			assert.Len(t, sink.all(), 2)
		})
	}
}

func TestServer_MissingFileDuringReloadKeepsOldCertificate(t *testing.T) {
	authority := testcerts.NewCA(t, "test-ca")
	first := authority.Server(t)
	dir := t.TempDir()
	certFile := writeFile(t, dir, "tls.crt", first.CertPEM)
	keyFile := writeFile(t, dir, "tls.key", first.KeyPEM)
	client, err := tlsconfig.Client(writeFile(t, dir, "ca.crt", authority.CertPEM), "", "")
	require.NoError(t, err)
	clk := newClock()
	sink := &errorSink{}
	cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{CertFile: certFile, KeyFile: keyFile, OnError: sink.add, Now: clk.Now})
	require.NoError(t, err)
	url := serveNetHTTP(t, cfg)

	require.NoError(t, removeFile(keyFile))
	clk.AdvancePast(tlsconfig.DefaultCheckInterval)
	assert.Equal(t, first.Serial, mustGet(t, url, client))
	require.Len(t, sink.all(), 1)
	assert.ErrorContains(t, sink.all()[0], "read key")
}

func TestServer_StopsReloadingWhenContextEnds(t *testing.T) {
	f := newFixture(t)
	clk := newClock()
	ctx, cancel := context.WithCancel(t.Context())
	cfg, err := tlsconfig.NewServer(ctx, tlsconfig.ServerConfig{CertFile: f.secret.Path("tls.crt"), KeyFile: f.secret.Path("tls.key"), Now: clk.Now})
	require.NoError(t, err)
	url := serveNetHTTP(t, cfg)

	cancel()
	f.rotate(t)
	clk.AdvancePast(tlsconfig.DefaultCheckInterval)
	assert.Equal(t, f.first.Serial, mustGet(t, url, f.client))
}

func TestClient_WithoutTheCAIsRefused(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			cfg, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"), "", nil)
			require.NoError(t, err)
			url := s.serve(t, cfg)

			systemRoots, err := tlsconfig.Client("", "", "")
			require.NoError(t, err)
			_, err = get(t, url, systemRoots)
			var unknown x509.UnknownAuthorityError
			assert.ErrorAs(t, err, &unknown, "system roots do not trust the test CA")

			otherCA := testcerts.NewCA(t, "other-ca")
			wrongCA, err := tlsconfig.Client(writeFile(t, t.TempDir(), "ca.crt", otherCA.CertPEM), "", "")
			require.NoError(t, err)
			_, err = get(t, url, wrongCA)
			assert.ErrorAs(t, err, &unknown, "another CA does not vouch for the server")
		})
	}
}

func TestServer_WithClientCARequiresAVerifiedClientCertificate(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			f := newFixture(t)
			clientCA := testcerts.NewCA(t, "client-ca")
			dir := t.TempDir()
			clientCAFile := writeFile(t, dir, "client-ca.crt", clientCA.CertPEM)
			cfg, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"), clientCAFile, nil)
			require.NoError(t, err)
			assert.Equal(t, tls.RequireAndVerifyClientCert, cfg.ClientAuth)
			url := s.serve(t, cfg)

			_, err = get(t, url, f.client)
			assert.Error(t, err, "no client certificate")

			good := clientCA.Client(t, "datastorage-agent")
			withCert, err := tlsconfig.Client(f.secret.Path("ca.crt"),
				writeFile(t, dir, "good.crt", good.CertPEM), writeFile(t, dir, "good.key", good.KeyPEM))
			require.NoError(t, err)
			assert.Equal(t, f.first.Serial, mustGet(t, url, withCert))

			rogue := testcerts.NewCA(t, "rogue-ca").Client(t, "datastorage-agent")
			withRogue, err := tlsconfig.Client(f.secret.Path("ca.crt"),
				writeFile(t, dir, "rogue.crt", rogue.CertPEM), writeFile(t, dir, "rogue.key", rogue.KeyPEM))
			require.NoError(t, err)
			_, err = get(t, url, withRogue)
			assert.Error(t, err, "client certificate from an untrusted CA")
		})
	}
}

func TestServer_ReloadsClientCA(t *testing.T) {
	f := newFixture(t)
	oldCA, newCAuth := testcerts.NewCA(t, "client-ca-1"), testcerts.NewCA(t, "client-ca-2")
	clientSecret := secretvol.New(t, map[string][]byte{"ca.crt": oldCA.CertPEM})
	clk := newClock()
	cfg, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{
		CertFile:     f.secret.Path("tls.crt"),
		KeyFile:      f.secret.Path("tls.key"),
		ClientCAFile: clientSecret.Path("ca.crt"),
		Now:          clk.Now,
	})
	require.NoError(t, err)
	url := serveNetHTTP(t, cfg)

	dir := t.TempDir()
	clientFor := func(name string, c testcerts.Leaf) *tls.Config {
		t.Helper()
		cc, err := tlsconfig.Client(f.secret.Path("ca.crt"),
			writeFile(t, dir, name+".crt", c.CertPEM), writeFile(t, dir, name+".key", c.KeyPEM))
		require.NoError(t, err)
		return cc
	}
	oldClient, newClient := clientFor("old", oldCA.Client(t, "datastorage-agent")), clientFor("new", newCAuth.Client(t, "datastorage-agent"))
	mustGet(t, url, oldClient)
	_, err = get(t, url, newClient)
	require.Error(t, err)

	clientSecret.Update(map[string][]byte{"ca.crt": newCAuth.CertPEM})
	clk.AdvancePast(tlsconfig.DefaultCheckInterval)
	mustGet(t, url, newClient)
	_, err = get(t, url, oldClient)
	assert.Error(t, err, "the old client CA is no longer trusted")
}

func TestServer_WorksWithFastHTTPClient(t *testing.T) {
	f := newFixture(t)
	cfg, err := tlsconfig.Server(t.Context(), f.secret.Path("tls.crt"), f.secret.Path("tls.key"), "", nil)
	require.NoError(t, err)
	url := serveFastHTTP(t, cfg)

	client := &fasthttp.Client{TLSConfig: f.client}
	defer client.CloseIdleConnections()
	status, body, err := client.GetTimeout(nil, url+"/", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, fasthttp.StatusOK, status)
	assert.Equal(t, "ok", string(body))
}

func TestServer_RefusesBadInitialFiles(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	garbage := writeFile(t, dir, "garbage.CertPEM", []byte("not PEM"))
	cert, key := f.secret.Path("tls.crt"), f.secret.Path("tls.key")

	tests := []struct {
		name              string
		cert, key, client string
		want              error
	}{
		{name: "no certificate file given", key: key},
		{name: "no key file given", cert: cert},
		{name: "missing certificate file", cert: dir + "/nope.crt", key: key},
		{name: "corrupt key", cert: cert, key: garbage},
		{name: "client CA without certificates", cert: cert, key: key, client: garbage, want: tlsconfig.ErrNoCertificates},
		{name: "missing client CA", cert: cert, key: key, client: dir + "/nope.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconfig.Server(t.Context(), tt.cert, tt.key, tt.client, nil)
			require.Error(t, err)
			assert.Nil(t, cfg)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}

	_, err := tlsconfig.NewServer(t.Context(), tlsconfig.ServerConfig{CertFile: cert, KeyFile: key, CheckInterval: -time.Second})
	assert.ErrorContains(t, err, "CheckInterval")
}

func TestClient_RefusesBadFiles(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	garbage := writeFile(t, dir, "garbage.CertPEM", []byte("not PEM"))
	c := f.ca.Client(t, "datastorage-agent")
	certFile, keyFile := writeFile(t, dir, "c.crt", c.CertPEM), writeFile(t, dir, "c.key", c.KeyPEM)

	_, err := tlsconfig.Client(garbage, "", "")
	assert.True(t, errors.Is(err, tlsconfig.ErrNoCertificates), "CA file without certificates: %v", err)
	_, err = tlsconfig.Client(dir+"/nope.crt", "", "")
	assert.Error(t, err, "missing CA file")
	_, err = tlsconfig.Client("", certFile, "")
	assert.Error(t, err, "certificate without key")
	_, err = tlsconfig.Client("", "", keyFile)
	assert.Error(t, err, "key without certificate")
	_, err = tlsconfig.Client("", certFile, garbage)
	assert.Error(t, err, "corrupt key")

	cfg, err := tlsconfig.Client(f.secret.Path("ca.crt"), certFile, keyFile)
	require.NoError(t, err)
	assert.Len(t, cfg.Certificates, 1)
	assert.NotNil(t, cfg.RootCAs)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
}
