package tlsconfig

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ClientConfig configures NewClient. Every field documents its zero value.
type ClientConfig struct {
	// ServerName is the DNS name or IP address the server's certificate must
	// hold (and the SNI for a name). Required.
	ServerName string
	// CAFile is a PEM bundle of the CAs trusted for the server, re-read when
	// it changes. Empty: the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate (chain) and key
	// presented when the server asks for one, re-read when they change. Both
	// or neither. Empty: no client certificate.
	CertFile, KeyFile string
	// CheckInterval is the least time between two looks at the files; the
	// look happens inside a handshake, so an idle client reads nothing.
	// Zero: DefaultCheckInterval.
	CheckInterval time.Duration
	// OnError receives each failed reload (a file that cannot be read, a
	// bundle without certificates, a key that does not match its
	// certificate); the previous CA bundle or certificate stays in use. The
	// same failure is reported once. Nil: ignored.
	OnError func(error)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c ClientConfig) withDefaults() ClientConfig {
	c.CheckInterval = cmp.Or(c.CheckInterval, DefaultCheckInterval)
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c ClientConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ServerName == "":
		return errors.New("tls client: a server name to verify is required")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("tls client: a client certificate needs both a certificate and a key file")
	case c.CheckInterval < 0:
		return errors.New("tls client: CheckInterval must be positive")
	}
	return nil
}

// ReloadingClient returns a client *tls.Config (TLS 1.2 minimum, modern
// cipher suites) for connections to serverName (a DNS name or an IP
// address), verified against the PEM CA bundle in caFile, which it re-reads,
// at most every checkInterval (0: DefaultCheckInterval), when a handshake
// needs it: a CA rotated in a mounted Secret or ConfigMap is trusted without
// a restart. A replacement that cannot be read or holds no certificate goes
// to onError (once per distinct error; nil: ignored) and the previous bundle
// stays in use.
func ReloadingClient(caFile, serverName string, checkInterval time.Duration, onError func(error)) (*tls.Config, error) {
	return NewClient(ClientConfig{ServerName: serverName, CAFile: caFile, CheckInterval: checkInterval, OnError: onError})
}

// NewClient is ReloadingClient with every setting, including a client
// certificate. The files are read at once, and that must succeed; afterwards
// they are re-read, at most every CheckInterval, when a handshake needs them.
//
// crypto/tls reads RootCAs once per Config, so with a CAFile verification is
// done here, in VerifyConnection, as crypto/tls would do it (chain to the
// current roots, ServerName), with crypto/tls's own verification switched
// off. The client certificate is handed out by GetClientCertificate: the
// certificate and key are read together and a pair whose key does not match
// its certificate is refused, so a handshake never presents a mismatched
// pair (a read that straddles the kubelet's swap of a Secret is reported and
// the next look finds the whole new pair).
func NewClient(cfg ClientConfig) (*tls.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tc := baseConfig()
	tc.ServerName = cfg.ServerName // SNI (for a DNS name), and what net/http keeps
	if cfg.CAFile != "" {
		roots, err := newWatch(watchConfig[*x509.CertPool]{
			files:    []watchedFile{{"CA file", cfg.CAFile}},
			build:    func(c [][]byte) (*x509.CertPool, error) { return certPool(cfg.CAFile, c[0]) },
			interval: cfg.CheckInterval, now: cfg.Now,
			errPrefix: "tls client: reload CA (keeping the previous bundle)", onError: cfg.OnError,
		})
		if err != nil {
			return nil, fmt.Errorf("tls client: %w", err)
		}
		tc.InsecureSkipVerify = true // verified against the current roots
		tc.VerifyConnection = func(cs tls.ConnectionState) error { return verify(cs, cfg.ServerName, roots.get()) }
	}
	if cfg.CertFile != "" {
		pair, err := newWatch(watchConfig[*tls.Certificate]{
			files: []watchedFile{{"client certificate", cfg.CertFile}, {"client key", cfg.KeyFile}},
			build: func(c [][]byte) (*tls.Certificate, error) {
				cert, err := keyPair(cfg.CertFile, cfg.KeyFile, c[0], c[1])
				return &cert, err
			},
			interval: cfg.CheckInterval, now: cfg.Now,
			errPrefix: "tls client: reload client certificate (keeping the previous one)", onError: cfg.OnError,
		})
		if err != nil {
			return nil, fmt.Errorf("tls client: %w", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.get(), nil }
	}
	return tc, nil
}

// verify checks the server's chain against roots and its name.
func verify(cs tls.ConnectionState, serverName string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls client: the server presented no certificate")
	}
	opts := x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}
