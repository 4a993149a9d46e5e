package forward

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/wire"
)

// Defaults for Config's zero fields.
const (
	DefaultBatchMaxRecords = 500
	DefaultBatchMaxBytes   = 4 << 20
	DefaultLinger          = 200 * time.Millisecond
	DefaultRequestTimeout  = 15 * time.Second
	DefaultMinBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultAccessRefresh   = time.Minute
	// MaxRetryAfter caps a central's Retry-After.
	MaxRetryAfter = 5 * time.Minute
)

// ErrPlainHTTP is returned by Validate for an http:// CentralURL without
// Insecure: the bearer token would cross the network in clear text.
var ErrPlainHTTP = errors.New("plain http would send the bearer token unencrypted; use https or allow it explicitly (Insecure)")

// Config configures a Forwarder. Every field documents its zero value.
type Config struct {
	// CentralURL is the central's base URL ("https://datastorage:8080"). Required.
	CentralURL string
	// TokenFile holds the bearer token (a projected service-account token);
	// it is re-read when it changes and after a 401. Empty: no Authorization.
	TokenFile string
	// BatchMaxRecords, BatchMaxBytes bound one batch (bytes as stored).
	// Zero: DefaultBatchMaxRecords (500), DefaultBatchMaxBytes (4 MiB).
	BatchMaxRecords int
	BatchMaxBytes   int
	// Linger is how long a batch below its limits waits for more records.
	// Zero: DefaultLinger. Negative: no waiting.
	Linger time.Duration
	// Insecure allows a plain http:// CentralURL. Zero (false): an http URL
	// is refused with ErrPlainHTTP, so the bearer token never crosses the
	// network unencrypted by default.
	Insecure bool
	// CAFile is a PEM bundle of the CAs trusted for an https CentralURL. It
	// is read by New, and again when it changes (a rotated CA needs no
	// restart); used only when Client is nil. Zero: system roots.
	CAFile string
	// ClientCertFile and ClientKeyFile are the PEM client certificate (chain)
	// and key presented to an https CentralURL that asks for one (a central
	// with --client-ca-file). They are read by New, and again when they
	// change (cert-manager renewals need no restart); used only when Client
	// is nil. Both or neither. Zero: no client certificate.
	ClientCertFile, ClientKeyFile string
	// RequestTimeout bounds one POST. Zero: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MinBackoff, MaxBackoff bound the exponential backoff. Zero:
	// DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// AccessRefresh is how often the central is asked which kinds the
	// identity may write (GET /api/v1/access, see Access); it is also asked
	// at start and soon after a refusal for authorization. Zero:
	// DefaultAccessRefresh (1m). Negative: never (every kind is accepted
	// and the central decides per record).
	AccessRefresh time.Duration
	// Client sends the requests. Nil: a client with its own transport that
	// trusts CAFile (Insecure and CAFile still govern the URL check).
	Client *http.Client
	// Logger receives the forwarder's log. Zero: disabled.
	Logger zerolog.Logger
	// Metrics receives the forwarder's metrics. Nil: a private set.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.BatchMaxRecords = cmp.Or(c.BatchMaxRecords, DefaultBatchMaxRecords)
	c.BatchMaxBytes = cmp.Or(c.BatchMaxBytes, DefaultBatchMaxBytes)
	c.Linger = cmp.Or(c.Linger, DefaultLinger)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MinBackoff = cmp.Or(c.MinBackoff, DefaultMinBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.AccessRefresh = cmp.Or(c.AccessRefresh, DefaultAccessRefresh)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// newClient is the default client: its own transport, trusting CAFile (or
// the system roots) for https and presenting the client certificate if
// configured; the files are re-read when rotated, so agents need no restart.
func (c Config) newClient() (*http.Client, error) {
	u, _ := url.Parse(c.CentralURL) // valid: Validate ran
	var tlsConfig *tls.Config       // plain http (Insecure): none
	if u.Scheme == "https" {
		log := c.Logger
		var err error
		tlsConfig, err = tlsconfig.NewClient(tlsconfig.ClientConfig{
			ServerName: u.Hostname(), CAFile: c.CAFile, CertFile: c.ClientCertFile, KeyFile: c.ClientKeyFile,
			OnError: func(err error) {
				log.Warn().Err(err).Str("ca_file", c.CAFile).Str("client_cert_file", c.ClientCertFile).Msg("central TLS files")
			},
		})
		if err != nil {
			return nil, err
		}
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}, nil
}

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.CentralURL == "" {
		return errors.New("forward config: CentralURL is required")
	}
	u, err := url.Parse(c.CentralURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("forward config: CentralURL %q must be an http(s) URL", c.CentralURL)
	}
	if u.Scheme == "http" && !c.Insecure {
		return fmt.Errorf("forward config: CentralURL %q: %w", c.CentralURL, ErrPlainHTTP)
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		return errors.New("forward config: ClientCertFile and ClientKeyFile go together")
	}
	if c.ClientCertFile != "" && u.Scheme != "https" {
		return fmt.Errorf("forward config: a client certificate needs an https CentralURL, not %q", c.CentralURL)
	}
	switch {
	case c.BatchMaxRecords < 1 || c.BatchMaxRecords > wire.MaxBatchRecords:
		return fmt.Errorf("forward config: BatchMaxRecords %d must be in [1, %d]", c.BatchMaxRecords, wire.MaxBatchRecords)
	case c.BatchMaxBytes < 1 || c.BatchMaxBytes > wire.MaxBatchBytes/2:
		return fmt.Errorf("forward config: BatchMaxBytes %d must be in [1, %d]", c.BatchMaxBytes, wire.MaxBatchBytes/2)
	case c.RequestTimeout < 0:
		return fmt.Errorf("forward config: RequestTimeout %v must be positive", c.RequestTimeout)
	case c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("forward config: backoff [%v, %v] must be positive and ordered", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}
