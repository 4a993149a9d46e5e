package central

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Defaults for Config's zero values.
const (
	DefaultReadTimeout     = 10 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultIdleTimeout     = 90 * time.Second
	DefaultStoreTimeout    = 8 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
	DefaultMaxHeaderBytes  = 16 << 10
	// Two transactions of coalesced writes at a time: the requests that
	// arrive meanwhile wait for the next commit and share it. Measured with
	// 64 single-record writers (make bench's direct scenario): 16 records
	// per commit and 1.4× the throughput of 8 in flight (4 per commit),
	// with lower latency at every percentile.
	DefaultWritesInFlight  = 2
	DefaultCoalesceRecords = 500
	DefaultMaxReceivedAge  = 30 * 24 * time.Hour
)

// Store persists validated records; *storage.DB implements it.
type Store interface {
	WriteBatch(ctx context.Context, serviceAccount string, records []wire.Record) ([]wire.ItemStatus, error)
	// WriteGroups: the coalescer's one transaction for several writers.
	WriteGroups(ctx context.Context, groups []storage.Group) ([][]wire.ItemStatus, error)
	Ping(ctx context.Context) error
}

// Config wires the server. Authenticator, Authorizer, Limiter and Store are
// required; every other field documents its zero value.
type Config struct {
	Authenticator auth.Authenticator
	Authorizer    authz.Authorizer
	Limiter       *ratelimit.Limiter
	Store         Store
	// Search enables POST /api/v1/incidents/similar (search.go); nil: 404.
	Search *SearchConfig
	// Reads enables the read API (read.go); nil: its endpoints answer 404.
	Reads *ReadConfig
	// Horizon, when set, is the oldest event time kept for a kind at now
	// (the zero time: kept forever): retention drops older records'
	// partitions, so a record older than it is refused rather than stored
	// for nothing or into a partition already gone (lifecycle.Manager).
	Horizon func(kind wire.Kind, now time.Time) time.Time
	// Holds enables the legal hold API (holds.go); nil: its endpoints
	// answer 404.
	Holds *HoldConfig
	// Ledger enables GET /api/v1/ledger/verify (ledger.go); nil: 404.
	Ledger *LedgerConfig
	// Committed, when set, is called after records were committed: the
	// embedding pipeline's Notify, so new audits need not wait for its poll.
	// It must not block.
	Committed func()

	// Logger receives the server's log. Zero: disabled.
	Logger zerolog.Logger
	// Metrics receives the server's metrics. Nil: a private set.
	Metrics *metrics.Set
	// Now is the clock. Nil: time.Now.
	Now func() time.Time

	// ReadTimeout bounds reading a whole request, headers and body: it cuts
	// off slow clients. Zero or negative: DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer. Zero or negative:
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout bounds an idle keep-alive connection. Zero or negative:
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// StoreTimeout bounds one database write. Zero or negative:
	// DefaultStoreTimeout.
	StoreTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests get to finish. Zero or
	// negative: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (fasthttp's read buffer).
	// Zero or negative: DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// WritesInFlight bounds the transactions that coalesced single-record
	// writes keep open at once; keep it below the database pool size so
	// batch requests still find connections. Zero or negative:
	// DefaultWritesInFlight.
	WritesInFlight int
	// MaxReceivedAge bounds how far in the past a batch item's receivedAt
	// (when an agent or a direct batch writer first accepted the record) may
	// be; an older one is rejected for that item. It lets an agent forward
	// after a long outage while refusing invented history. Zero or negative:
	// DefaultMaxReceivedAge (30 days).
	MaxReceivedAge time.Duration

	// TLS, when set, serves the API over TLS (the metrics listener stays
	// plain HTTP for in-cluster scraping). Built by internal/tlsconfig, which
	// reloads rotated certificates.
	TLS *tls.Config
}

// Validate reports the first missing dependency.
func (c Config) Validate() error {
	switch {
	case c.Authenticator == nil:
		return errors.New("central: Config.Authenticator is required")
	case c.Authorizer == nil:
		return errors.New("central: Config.Authorizer is required")
	case c.Limiter == nil:
		return errors.New("central: Config.Limiter is required")
	case c.Store == nil:
		return errors.New("central: Config.Store is required")
	}
	if c.Search != nil {
		if err := c.Search.Validate(); err != nil {
			return err
		}
	}
	if c.Reads != nil {
		if err := c.Reads.Validate(); err != nil {
			return err
		}
	}
	if c.Holds != nil {
		return c.Holds.Validate()
	}
	return nil
}

// withDefaults returns c with its zero fields set; here a negative limit
// means its default too (max(v, 0) makes it zero first).
func (c Config) withDefaults() Config {
	c.ReadTimeout = cmp.Or(max(c.ReadTimeout, 0), DefaultReadTimeout)
	c.WriteTimeout = cmp.Or(max(c.WriteTimeout, 0), DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(max(c.IdleTimeout, 0), DefaultIdleTimeout)
	c.StoreTimeout = cmp.Or(max(c.StoreTimeout, 0), DefaultStoreTimeout)
	c.ShutdownTimeout = cmp.Or(max(c.ShutdownTimeout, 0), DefaultShutdownTimeout)
	c.MaxReceivedAge = cmp.Or(max(c.MaxReceivedAge, 0), DefaultMaxReceivedAge)
	c.WritesInFlight = cmp.Or(max(c.WritesInFlight, 0), DefaultWritesInFlight)
	c.MaxHeaderBytes = cmp.Or(max(c.MaxHeaderBytes, 0), DefaultMaxHeaderBytes)
	if c.Metrics == nil { // not cmp.Or: it would build a set to throw away
		c.Metrics = metrics.NewSet()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Reads != nil {
		reads := *c.Reads
		reads.QueryTimeout = cmp.Or(reads.QueryTimeout, DefaultQueryTimeout)
		c.Reads = &reads
	}
	return c
}

// Server is the central's HTTP edge.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	body    *bodyDecoder
	metrics *serverMetrics
	writes  *coalescer // single-record writes, merged into shared transactions
}

// New validates cfg and builds a server; Serve runs it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	body, err := newBodyDecoder(wire.MaxBatchBytes)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		body:    body,
		metrics: newServerMetrics(cfg.Metrics),
	}, nil
}

// Serve answers the API on api and Prometheus metrics on metricsLn until ctx
// is cancelled, then stops accepting and waits up to ShutdownTimeout for
// in-flight requests (and so their database writes) to finish.
func (s *Server) Serve(ctx context.Context, api, metricsLn net.Listener) error {
	if s.cfg.TLS != nil {
		api = tls.NewListener(api, s.cfg.TLS)
	}
	s.writes = newCoalescer(s.cfg.Store, s.cfg.StoreTimeout, s.cfg.WritesInFlight, DefaultCoalesceRecords, s.cfg.Metrics)
	apiSrv := s.newHTTPServer("api", s.Handler())
	metricsSrv := s.newHTTPServer("metrics", s.metricsHandler)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.serveUntil(gctx, apiSrv, api) })
	g.Go(func() error { return s.serveUntil(gctx, metricsSrv, metricsLn) })
	err := g.Wait()
	// The last coalesced writes finish here; a handler that outlived the
	// shutdown grace is answered errShuttingDown.
	s.writes.close()
	s.body.close()
	return err
}

func (s *Server) newHTTPServer(name string, h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		// Handlers read the body themselves once the caller is authorized
		// (requestBody): an unauthenticated 16 MiB request costs 8 KiB.
		StreamRequestBody:             true,
		Name:                          "datastorage-central",
		Handler:                       h,
		ReadTimeout:                   s.cfg.ReadTimeout,
		WriteTimeout:                  s.cfg.WriteTimeout,
		IdleTimeout:                   s.cfg.IdleTimeout,
		ReadBufferSize:                s.cfg.MaxHeaderBytes,
		MaxRequestBodySize:            wire.MaxBatchBytes,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        edge.Logger(s.log.With().Str("listener", name).Logger(), zerolog.WarnLevel),
		ErrorHandler:                  edge.ParseError, // requests fasthttp could not read
	}
}

func (s *Server) serveUntil(ctx context.Context, srv *fasthttp.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := edge.Shutdown(sctx, srv, s.log.With().Str("listener", ln.Addr().String()).Logger()); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}
