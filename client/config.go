package client

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Defaults for Config's zero fields.
const (
	DefaultTimeout     = 10 * time.Second       // per attempt, as in the spec's client
	DefaultMaxRetries  = 3                      // retries after the first attempt
	DefaultBackoff     = 100 * time.Millisecond // first retry delay, doubled each retry
	DefaultMaxBackoff  = 5 * time.Second        // cap of one delay (Retry-After included)
	DefaultMaxIdleConn = 64                     // idle connections kept to the one host
)

// Config configures a Client. Only BaseURL is required.
type Config struct {
	// BaseURL is the agent ("http://127.0.0.1:18080") or the central
	// ("https://datastorage.kubernaut-system.svc:8080"), without /api/v1.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>". Empty: see TokenFile.
	Token string
	// TokenFile is a projected service-account token, re-read whenever the
	// file changes (the kubelet rotates it). Empty with Token empty: no
	// Authorization header (an agent on loopback needs none). Setting both is
	// an error.
	TokenFile string
	// HTTPClient sends the requests. Nil: a client whose transport keeps
	// MaxIdleConnsPerHost connections to the one host. Its own Timeout, if
	// any, applies on top of Timeout.
	HTTPClient *http.Client
	// MaxIdleConnsPerHost sizes the default transport's pool (ignored with
	// HTTPClient). Zero: DefaultMaxIdleConn.
	MaxIdleConnsPerHost int
	// Timeout bounds one attempt (connect, send, answer). Zero: DefaultTimeout.
	Timeout time.Duration
	// MaxRetries is how many times a retryable failure is retried after the
	// first attempt. Zero: DefaultMaxRetries. Negative: never retry.
	MaxRetries int
	// Backoff is the delay before the first retry, doubled for each further
	// retry, with jitter (a delay is drawn from [d/2, d]). Zero: DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps one delay, a server's Retry-After included. Zero:
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// UserAgent is sent as User-Agent. Empty: "kubernaut-datastorage-client".
	UserAgent string
}

func (c Config) withDefaults() Config {
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.MaxRetries = max(cmp.Or(c.MaxRetries, DefaultMaxRetries), 0) // negative: never retry
	c.Backoff = cmp.Or(c.Backoff, DefaultBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.MaxIdleConnsPerHost = cmp.Or(c.MaxIdleConnsPerHost, DefaultMaxIdleConn)
	c.UserAgent = cmp.Or(c.UserAgent, "kubernaut-datastorage-client")
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	if c.BaseURL == "" {
		return errors.New("client config: BaseURL is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("client config: BaseURL %q: want http(s)://host[:port]", c.BaseURL)
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("client config: Token and TokenFile are exclusive")
	}
	switch {
	case c.Timeout < 0:
		return errors.New("client config: Timeout must not be negative")
	case c.Backoff < 0:
		return errors.New("client config: Backoff must not be negative")
	case c.MaxBackoff < 0:
		return errors.New("client config: MaxBackoff must not be negative")
	case c.MaxIdleConnsPerHost < 0:
		return errors.New("client config: MaxIdleConnsPerHost must not be negative")
	}
	return nil
}
