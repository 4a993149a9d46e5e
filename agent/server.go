package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/wire"
)

// Server is the agent's HTTP edge. Start binds and serves; Close stops.
type Server struct {
	cfg Config
	q   *queue.Queue
	log zerolog.Logger

	api, metricsSrv *fasthttp.Server
	apiLn, metricLn net.Listener
	wg              sync.WaitGroup
	closeOnce       sync.Once
	closeErr        error

	mDuration *metrics.Histogram
}

// NewServer validates cfg; the queue must be open.
func NewServer(cfg Config, q *queue.Queue) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if q == nil {
		return nil, errors.New("agent server: queue is required")
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		q:         q,
		log:       cfg.Logger.With().Str("component", "server").Logger(),
		mDuration: cfg.Metrics.NewHistogram("agent_http_request_duration_seconds"),
	}
	s.api = &fasthttp.Server{
		Handler:              s.handleAPI,
		ErrorHandler:         edge.ParseError,
		Name:                 "kubernaut-agent",
		MaxRequestBodySize:   wire.MaxRecordBytes + 1,
		ReadTimeout:          cfg.ReadTimeout,
		WriteTimeout:         30 * time.Second,
		IdleTimeout:          2 * time.Minute,
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		Logger:               edge.Logger(s.log, zerolog.DebugLevel),
	}
	s.metricsSrv = &fasthttp.Server{Handler: s.handleMetrics, Name: "kubernaut-agent", ReadTimeout: 10 * time.Second,
		Logger: edge.Logger(s.log, zerolog.DebugLevel)}
	return s, nil
}

// Start binds the listeners and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	s.apiLn = ln
	if s.cfg.MetricsListen != "-" {
		mln, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen %s: %w", s.cfg.MetricsListen, err)
		}
		s.metricLn = mln
		s.serve(s.metricsSrv, mln)
	}
	s.serve(s.api, ln)
	s.log.Info().Str("listen", ln.Addr().String()).Str("metrics", s.MetricsAddr()).Msg("agent listening")
	return nil
}

func (s *Server) serve(srv *fasthttp.Server, ln net.Listener) {
	s.wg.Go(func() {
		if err := srv.Serve(ln); err != nil {
			s.log.Error().Err(err).Msg("server stopped")
		}
	})
}

// Addr is the API listener's address (after Start).
func (s *Server) Addr() string { return s.apiLn.Addr().String() }

// MetricsAddr is the metrics listener's address, "" when disabled.
func (s *Server) MetricsAddr() string {
	if s.metricLn == nil {
		return ""
	}
	return s.metricLn.Addr().String()
}

// Close stops accepting, lets requests in flight finish until ctx ends
// (connections open after that close with the process: edge.Shutdown), and
// waits for the serving goroutines. It is idempotent.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.apiLn != nil {
			errs = append(errs, edge.Shutdown(ctx, s.api, s.log))
		}
		if s.metricLn != nil {
			errs = append(errs, edge.Shutdown(ctx, s.metricsSrv, s.log))
		}
		s.wg.Wait()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close server: %w", err)
		}
	})
	return s.closeErr
}

// handleAPI routes the API listener.
func (s *Server) handleAPI(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	switch path := string(ctx.Path()); path {
	case "/api/v1/audit/remediation":
		s.handleWrite(ctx, wire.KindRemediation)
	case "/api/v1/audit/workflow":
		s.handleWrite(ctx, wire.KindWorkflow)
	case "/api/v1/deadletter":
		s.handleDeadLetters(ctx)
	case "/api/v1/deadletter/replay":
		s.handleReplay(ctx)
	case "/healthz", "/readyz":
		s.handleHealth(ctx, path)
	default:
		s.writeError(ctx, edge.NotFound())
	}
	s.mDuration.UpdateDuration(start)
	s.cfg.Metrics.GetOrCreateCounter(`agent_http_requests_total{code="` + strconv.Itoa(ctx.Response.StatusCode()) + `"}`).Inc()
}

// handleMetrics routes the metrics listener.
func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) {
	switch path := string(ctx.Path()); path {
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.cfg.Metrics.WritePrometheus(ctx)
		metrics.WriteProcessMetrics(ctx)
	case "/healthz", "/readyz":
		s.handleHealth(ctx, path)
	default:
		s.writeError(ctx, edge.NotFound())
	}
}

// handleWrite is POST /api/v1/audit/{kind}: validate, assign the ID, append
// (returns once fsynced), answer 201.
func (s *Server) handleWrite(ctx *fasthttp.RequestCtx, kind wire.Kind) {
	if !ctx.IsPost() {
		s.writeError(ctx, edge.MethodNotAllowed(ctx, "POST"))
		return
	}
	// The central would refuse it: say so now rather than buffer it for a dead letter.
	if s.cfg.Access != nil && !s.cfg.Access.Allows(kind) {
		s.writeError(ctx, &refusedKindError{identity: s.cfg.ServiceAccount, kind: kind})
		return
	}
	if ct := ctx.Request.Header.ContentType(); len(ct) > 0 && !edge.IsJSON(string(ct)) {
		s.writeError(ctx, errUnsupportedMediaType)
		return
	}
	// The agent is on loopback: it takes uncompressed records only. A body
	// in an encoding it does not undo must not be stored as if it were JSON.
	if enc := strings.TrimSpace(string(ctx.Request.Header.Peek("Content-Encoding"))); enc != "" && !strings.EqualFold(enc, "identity") {
		s.writeError(ctx, errUnsupportedEncoding)
		return
	}
	body := ctx.PostBody()
	if len(body) > wire.MaxRecordBytes {
		s.writeError(ctx, errBodyTooLarge)
		return
	}
	now := s.cfg.Now()
	// Decoded to validate only: the queue keeps the body as sent (copied
	// before Append returns, so nothing aliases fasthttp's buffers), and the
	// central decodes the same bytes by the same rules.
	if _, err := wire.DecodeAudit(kind, body, now); err != nil {
		s.writeError(ctx, err)
		return
	}
	rec := wire.RawRecord{ID: wire.NewID(), Kind: kind, ReceivedAt: now.UTC(), Body: body}
	if key := ctx.Request.Header.Peek("Idempotency-Key"); key != nil {
		if err := wire.ValidateIdempotencyKey(string(key)); err != nil {
			s.writeError(ctx, err)
			return
		}
		rec.ID = wire.IDForKey(s.cfg.ServiceAccount, kind, string(key))
	}

	// Not the request's context: fasthttp cancels that when shutdown starts,
	// and an append cancelled then may still be committed, so the client would
	// get a 503 for a stored record. Shutdown waits for handlers instead; the
	// timeout alone bounds the wait (and watching fasthttp's context would cost
	// a goroutine per request).
	actx, cancel := context.WithTimeout(context.Background(), s.cfg.AppendTimeout)
	defer cancel()
	if err := s.q.Append(actx, []wire.RawRecord{rec}); err != nil {
		s.writeError(ctx, err)
		return
	}
	s.cfg.Metrics.GetOrCreateCounter(`agent_records_accepted_total{kind="` + string(kind) + `"}`).Inc()
	// wire.WriteResponse, written by hand on the hot path: the ID needs no
	// escaping (wire.ValidateID).
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"auditID":"` + rec.ID + `","status":"buffered"}`)
}

// handleHealth: /healthz is liveness; /readyz is the buffer open and below
// its limit, with headroom: 5% of it, at most wire.MaxRecordBytes.
func (s *Server) handleHealth(ctx *fasthttp.RequestCtx, path string) {
	if path == "/readyz" {
		headroom := min(s.q.MaxBytes()/20, wire.MaxRecordBytes)
		if d := s.q.Depth(); s.q.MaxBytes()-d.Bytes-d.DeadBytes < headroom {
			s.writeError(ctx, fmt.Errorf("readyz: %w", queue.ErrFull))
			return
		}
		if s.q.Closed() {
			s.writeError(ctx, fmt.Errorf("readyz: %w", queue.ErrClosed))
			return
		}
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ok\n")
}

// handleDeadLetters lists (GET) or deletes (DELETE ?through=SEQ) the dead
// letters, for loopback callers only.
func (s *Server) handleDeadLetters(ctx *fasthttp.RequestCtx) {
	if !ctx.RemoteIP().IsLoopback() {
		s.writeError(ctx, edge.NotFound())
		return
	}
	if ctx.IsDelete() {
		s.deleteDeadLetters(ctx)
		return
	}
	if !ctx.IsGet() {
		s.writeError(ctx, edge.MethodNotAllowed(ctx, "GET, DELETE"))
		return
	}
	limit := 1000
	if v := ctx.QueryArgs().Peek("limit"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			s.writeError(ctx, &wire.ValidationError{Field: "limit", Message: "limit must be a positive integer"})
			return
		}
		limit = n
	}
	dead, err := s.q.ListDeadLetters(ctx, limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, DeadLetterList{Count: s.q.DeadLetters(), DeadLetters: dead})
}

// deleteDeadLetters deletes the dead letters up to and including the seq
// given as "through" (required, so that one listed and saved is never
// confused with all), and answers {"deleted":N}.
func (s *Server) deleteDeadLetters(ctx *fasthttp.RequestCtx) {
	through, err := throughArg(ctx, "delete")
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	n, err := s.q.DeleteDeadLetters(ctx, through)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, DeadLetterDeletion{Deleted: n})
}

// handleReplay is POST /api/v1/deadletter/replay?through=SEQ, for loopback
// callers only: the dead letters up to and including SEQ go back into the
// queue (once whatever made the central refuse them is fixed), and the
// answer is {"replayed":N,"skipped":M}; skipped ones stay.
func (s *Server) handleReplay(ctx *fasthttp.RequestCtx) {
	if !ctx.RemoteIP().IsLoopback() {
		s.writeError(ctx, edge.NotFound())
		return
	}
	if !ctx.IsPost() {
		s.writeError(ctx, edge.MethodNotAllowed(ctx, "POST"))
		return
	}
	through, err := throughArg(ctx, "replay")
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	r, err := s.q.ReplayDeadLetters(ctx, through)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, r)
}

// throughArg is the required "through" seq: the decimal digits GET lists.
func throughArg(ctx *fasthttp.RequestCtx, verb string) (queue.Key, error) {
	through, err := strconv.ParseUint(string(ctx.QueryArgs().Peek("through")), 10, 64)
	if err != nil || through == 0 {
		return 0, &wire.ValidationError{Field: "through",
			Message: "through must be the seq of the last dead letter to " + verb + " (its decimal digits, as GET lists them)"}
	}
	return queue.Key(through), nil
}

// DeadLetterDeletion is the body of DELETE /api/v1/deadletter.
type DeadLetterDeletion struct {
	Deleted int64 `json:"deleted"`
}

// DeadLetterList is the body of GET /api/v1/deadletter.
type DeadLetterList struct {
	// Count is the total held; DeadLetters at most the requested limit.
	Count       int64              `json:"count"`
	DeadLetters []queue.DeadLetter `json:"deadLetters"`
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	if err := edge.WriteJSON(ctx, status, v); err != nil {
		s.writeError(ctx, fmt.Errorf("encode answer: %w", err))
	}
}
