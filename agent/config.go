package agent

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/wire"
)

// Defaults for Config's zero fields.
const (
	DefaultListen        = "127.0.0.1:18080"
	DefaultMetricsListen = ":19090"
	DefaultRetryAfter    = 2 * time.Second
	DefaultAppendTimeout = 10 * time.Second
	DefaultReadTimeout   = 30 * time.Second
)

// Config configures a Server. Every field documents its zero value.
type Config struct {
	// Listen is the API address. Zero: DefaultListen. Its host must be
	// loopback (see IsLoopback) unless AllowRemoteWrites is set.
	Listen string
	// AllowRemoteWrites lets Listen be a non-loopback address: whoever can
	// reach it writes audit records under the pod's identity. Zero (false):
	// loopback only.
	AllowRemoteWrites bool
	// MetricsListen serves /metrics, /healthz and /readyz. Zero:
	// DefaultMetricsListen. "-" disables it.
	MetricsListen string
	// ServiceAccount ("namespace/name") scopes Idempotency-Key IDs, as the
	// central does for the same caller. Zero: "".
	ServiceAccount string
	// RetryAfter is sent with 503 when the buffer is full. Zero: DefaultRetryAfter.
	RetryAfter time.Duration
	// AppendTimeout bounds the wait for the fsync. Zero: DefaultAppendTimeout.
	AppendTimeout time.Duration
	// ReadTimeout bounds reading one whole request: a client that sends it
	// slower (slowloris) is cut off. Zero: DefaultReadTimeout.
	ReadTimeout time.Duration
	// Access says whether the pod's identity may write a kind; a write of a
	// kind it may not is answered 403 at once, nothing stored. It is asked on
	// every write, so it must be cheap (forward.Access: one atomic load).
	// Nil: every kind.
	Access Access
	// Logger receives the server's log. Zero: disabled.
	Logger zerolog.Logger
	// Metrics receives the server's metrics. Nil: a private set.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Access is what the server needs to know of its identity's permissions
// (forward.Access: what the central last said).
type Access interface {
	Allows(kind wire.Kind) bool
}

func (c Config) withDefaults() Config {
	c.Listen = cmp.Or(c.Listen, DefaultListen)
	c.MetricsListen = cmp.Or(c.MetricsListen, DefaultMetricsListen)
	c.RetryAfter = cmp.Or(c.RetryAfter, DefaultRetryAfter)
	c.AppendTimeout = cmp.Or(c.AppendTimeout, DefaultAppendTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, DefaultReadTimeout)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("agent config: Listen %q: %w", c.Listen, err)
	}
	if !c.AllowRemoteWrites && !IsLoopback(c.Listen) {
		return fmt.Errorf("agent config: Listen %q is not a loopback address: whoever reaches it writes under the pod's "+
			"identity (set AllowRemoteWrites to allow it)", c.Listen)
	}
	if c.MetricsListen != "-" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("agent config: MetricsListen %q: %w", c.MetricsListen, err)
		}
	}
	if c.RetryAfter < time.Second {
		return errors.New("agent config: RetryAfter must be at least 1s (it is sent in whole seconds)")
	}
	if c.AppendTimeout < 0 {
		return errors.New("agent config: AppendTimeout must be positive")
	}
	return nil
}

// IsLoopback reports whether a listen address's host is loopback only:
// 127.0.0.0/8, ::1 or "localhost". An empty host, 0.0.0.0 or :: listens on
// every interface and is not.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
