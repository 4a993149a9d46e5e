package agent

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/wire"
)

// Refusals of a record the agent does not take.
var (
	errUnsupportedMediaType = edge.UnsupportedMedia("Content-Type must be application/json")
	errUnsupportedEncoding  = edge.UnsupportedMedia("Content-Encoding is not supported: send the record uncompressed")
	errBodyTooLarge         = edge.TooLarge("Request body is larger than " + strconv.Itoa(wire.MaxRecordBytes) + " bytes")
)

// refusedKindError is a write of a kind the pod's identity may not write,
// as the central last said (Config.Access).
type refusedKindError struct {
	identity string // "namespace/name", or "" when the token did not say
	kind     wire.Kind
}

func (e *refusedKindError) Error() string {
	who := e.identity
	if who == "" {
		who = "this service account"
	}
	return who + " may not write " + string(e.kind) + " audits"
}

// writeError is the one place that maps an error to a status and a JSON
// body; it logs what the client is not told.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	var (
		body       *wire.ErrorBody
		retryAfter time.Duration // for a 503: when to try again
		verr       *wire.ValidationError
		refused    *refusedKindError
		edgeErr    *edge.Refusal
	)
	switch {
	case errors.As(err, &verr):
		body = verr.Body()
	case errors.As(err, &refused):
		// The central's message for the same refusal of a batch item.
		body = wire.Forbidden(refused.Error())
		s.cfg.Metrics.GetOrCreateCounter(`agent_records_refused_total{kind="` + string(refused.kind) + `"}`).Inc()
	case errors.As(err, &edgeErr):
		body = edgeErr.Body
	case errors.Is(err, queue.ErrFull):
		body, retryAfter = wire.ServiceUnavailable("Audit buffer is full; retry later"), s.cfg.RetryAfter
	case errors.Is(err, queue.ErrDiskFull):
		body, retryAfter = wire.ServiceUnavailable("Audit buffer disk is full; retry later"), s.cfg.RetryAfter
		s.log.Warn().Err(err).Msg("buffer disk full")
	case errors.Is(err, queue.ErrClosed):
		body, retryAfter = wire.ServiceUnavailable("Agent is shutting down"), s.cfg.RetryAfter
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		body, retryAfter = wire.ServiceUnavailable("Audit buffer is too slow; retry later"), s.cfg.RetryAfter
		s.log.Warn().Err(err).Msg("append timed out")
	default:
		id := edge.CorrelationID()
		s.log.Error().Err(err).Str("correlation_id", id).Msg("request failed")
		ctx.Response.Header.Set("X-Correlation-ID", id)
		body = wire.InternalError(id)
	}
	edge.WriteError(ctx, body, retryAfter)
}
