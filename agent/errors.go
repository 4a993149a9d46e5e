package agent

import (
	"context"
	"errors"
	"strconv"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

// Conditions the HTTP edge detects itself.
var (
	errNotFound             = errors.New("not found")
	errMethodNotAllowed     = errors.New("method not allowed")
	errUnsupportedMediaType = errors.New("unsupported media type")
	errBodyTooLarge         = errors.New("body too large")
	errUnsupportedEncoding  = errors.New("unsupported content encoding")
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
		body    *wire.ErrorBody
		verr    *wire.ValidationError
		refused *refusedKindError
	)
	switch {
	case errors.As(err, &verr):
		body = verr.Body()
	case errors.As(err, &refused):
		// The central's message for the same refusal of a batch item.
		body = &wire.ErrorBody{Error: wire.CodeAuthorizationFailed, Message: refused.Error()}
		s.cfg.Metrics.GetOrCreateCounter(`agent_records_refused_total{kind="` + string(refused.kind) + `"}`).Inc()
	case errors.Is(err, errNotFound):
		body = wire.NotFound()
	case errors.Is(err, errMethodNotAllowed):
		body = wire.MethodNotAllowed()
	case errors.Is(err, errUnsupportedMediaType):
		body = wire.UnsupportedMediaType("Content-Type must be application/json")
	case errors.Is(err, errUnsupportedEncoding):
		body = wire.UnsupportedMediaType("Content-Encoding is not supported: send the record uncompressed")
	case errors.Is(err, errBodyTooLarge):
		body = wire.PayloadTooLarge("Request body is larger than " + strconv.Itoa(wire.MaxRecordBytes) + " bytes")
	case errors.Is(err, queue.ErrFull):
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		body = wire.ServiceUnavailable("Audit buffer is full; retry later")
	case errors.Is(err, queue.ErrDiskFull):
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		body = wire.ServiceUnavailable("Audit buffer disk is full; retry later")
		s.log.Warn().Err(err).Msg("buffer disk full")
	case errors.Is(err, queue.ErrClosed):
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		body = wire.ServiceUnavailable("Agent is shutting down")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		body = wire.ServiceUnavailable("Audit buffer is too slow; retry later")
		s.log.Warn().Err(err).Msg("append timed out")
	default:
		id := uuid.NewString()
		s.log.Error().Err(err).Str("correlation_id", id).Msg("request failed")
		body = wire.InternalError(id)
	}
	ctx.SetStatusCode(body.HTTPStatus())
	ctx.SetContentType("application/json")
	ctx.SetBody(body.Marshal())
}
