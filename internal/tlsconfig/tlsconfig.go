package tlsconfig

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// DefaultCheckInterval is how often, at most, the server's files are re-read.
const DefaultCheckInterval = time.Second

// ErrNoCertificates is returned when a CA file holds no PEM certificate.
var ErrNoCertificates = errors.New("no PEM certificate found")

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with AEAD
// ciphers only. TLS 1.3 suites are not configurable in Go and are all modern.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig configures NewServer. Every field documents its zero value.
type ServerConfig struct {
	// CertFile and KeyFile are the PEM certificate (chain) and private key.
	// Required.
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, makes client certificates required and verified
	// against the PEM CA bundle it holds (tls.RequireAndVerifyClientCert).
	// Empty: client certificates are neither requested nor checked.
	ClientCAFile string
	// CheckInterval is the least time between two looks at the files; the
	// look happens inside a TLS handshake, so an idle server reads nothing.
	// Zero: DefaultCheckInterval.
	CheckInterval time.Duration
	// OnError receives each failed reload (a half-written file, a key that
	// does not match its certificate); the previous certificate stays in use.
	// The same failing file contents are reported once. Nil: ignored.
	OnError func(error)
	// OnReload receives the leaf certificate after each successful reload
	// (not the initial load). Nil: ignored.
	OnReload func(leaf *x509.Certificate)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c ServerConfig) withDefaults() ServerConfig {
	c.CheckInterval = cmp.Or(c.CheckInterval, DefaultCheckInterval)
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	if c.OnReload == nil {
		c.OnReload = func(*x509.Certificate) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c ServerConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.CertFile == "":
		return errors.New("tls server config: CertFile is required")
	case c.KeyFile == "":
		return errors.New("tls server config: KeyFile is required")
	case c.CheckInterval < 0:
		return fmt.Errorf("tls server config: CheckInterval %s must be positive", c.CheckInterval)
	}
	return nil
}

// Server returns a *tls.Config (TLS 1.2 minimum, modern cipher suites) whose
// certificate is re-read from certFile/keyFile, at most once a second, when
// their contents change. If clientCAFile != "", client certificates are
// required and verified against it, and it is reloaded too. A reload that
// fails keeps the previous certificate and reports the error through onError.
// Reloading stops when ctx is done; the last loaded certificate stays in use.
func Server(ctx context.Context, certFile, keyFile, clientCAFile string, onError func(error)) (*tls.Config, error) {
	return NewServer(ctx, ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile, OnError: onError})
}

// NewServer is Server with every setting. The initial load must succeed.
//
// The returned config answers each handshake through GetConfigForClient with
// an immutable snapshot holding the current certificate and client CA pool,
// so the standard library does the client verification. Files are compared by
// content, not name or inotify events: a Kubernetes Secret volume replaces
// its files by swapping the ..data symlink, which os.ReadFile follows. The
// snapshot sets no NextProtos, so connections speak HTTP/1.1 (what fasthttp
// serves). Session tickets use the returned config's automatic keys; a
// resumed session does not see a new certificate until it does a full
// handshake.
func NewServer(ctx context.Context, cfg ServerConfig) (*tls.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w, err := newWatch(watchConfig[*tls.Config]{
		files:    []watchedFile{{"certificate", cfg.CertFile}, {"key", cfg.KeyFile}, {"client CA", cfg.ClientCAFile}},
		build:    func(c [][]byte) (*tls.Config, error) { return serverSnapshot(cfg, c[0], c[1], c[2]) },
		interval: cfg.CheckInterval, now: cfg.Now, ctx: ctx,
		errPrefix: "tls reload (keeping the previous certificate)", onError: cfg.OnError,
		onReload: func(snap *tls.Config) { cfg.OnReload(snap.Certificates[0].Leaf) },
	})
	if err != nil {
		return nil, fmt.Errorf("tls server: %w", err)
	}
	first := w.get()
	outer := baseConfig()
	outer.ClientAuth = first.ClientAuth
	outer.ClientCAs = first.ClientCAs
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return w.get(), nil }
	// Used only if a caller replaces GetConfigForClient.
	outer.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &w.get().Certificates[0], nil
	}
	return outer, nil
}

// serverSnapshot parses the server's files into the immutable config of
// each handshake.
func serverSnapshot(cfg ServerConfig, certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	cert, err := keyPair(cfg.CertFile, cfg.KeyFile, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	snap := baseConfig()
	snap.Certificates = []tls.Certificate{cert}
	if cfg.ClientCAFile != "" {
		pool, err := certPool(cfg.ClientCAFile, caPEM)
		if err != nil {
			return nil, err
		}
		snap.ClientAuth = tls.RequireAndVerifyClientCert
		snap.ClientCAs = pool
	}
	return snap, nil
}

// keyPair parses a certificate (chain) and its key, refusing a key that does
// not match the certificate, with the leaf parsed.
func keyPair(certFile, keyFile string, certPEM, keyPEM []byte) (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("parse certificate %s: %w", certFile, err)
		}
	}
	return cert, nil
}

// Client returns a *tls.Config (TLS 1.2 minimum, modern cipher suites)
// trusting the PEM CA bundle in caFile (the system roots when ""), presenting
// the client certificate in certFile/keyFile when both are set. The files are
// read once.
func Client(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := baseConfig()
	if caFile != "" {
		pool, _, err := readCAFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("tls client: a client certificate needs both a certificate and a key file")
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: append([]uint16(nil), cipherSuites...),
	}
}

// readCAFile reads a client's CA bundle: the pool and the file's bytes.
func readCAFile(caFile string) (*x509.CertPool, []byte, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls client: read CA file: %w", err)
	}
	pool, err := certPool(caFile, b)
	if err != nil {
		return nil, nil, fmt.Errorf("tls client: %w", err)
	}
	return pool, b, nil
}

func certPool(name string, pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("CA file %s: %w", name, ErrNoCertificates)
	}
	return pool, nil
}
