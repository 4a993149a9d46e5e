package central

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// forbiddenError is a caller that authenticated but may not perform action
// ("" for a batch from a caller that may write no kind at all).
type forbiddenError struct {
	caller string
	action authz.Action
}

func (e *forbiddenError) Error() string {
	if e.action == "" {
		return e.caller + " may not write audits of any kind"
	}
	return e.caller + " may not " + string(e.action)
}

// body is the answer: the spec's body for writes, its own for a read.
func (e *forbiddenError) body() *wire.ErrorBody {
	switch e.action {
	case authz.ReadSimilar:
		return wire.Forbidden("Service account not authorized to search similar incidents")
	case authz.ReadAudit:
		return wire.Forbidden("Service account not authorized to read audits")
	case authz.ExportAudit:
		return wire.Forbidden("Service account not authorized to export audits")
	case authz.HoldAudit:
		return wire.Forbidden("Service account not authorized to manage legal holds")
	case authz.VerifyLedger:
		return wire.Forbidden("Service account not authorized to verify the ledger")
	}
	return wire.AuthorizationFailed()
}

func forbidden(id auth.Identity, action authz.Action) error {
	return &forbiddenError{caller: id.Key(), action: action}
}

// authorize is nil when id may perform act, a *forbiddenError when it may
// not, and an error wrapping authz.ErrUnavailable when the authorizer could
// not decide (503: never allowed).
func (s *Server) authorize(ctx context.Context, id auth.Identity, act authz.Action) error {
	ok, err := authz.Check(ctx, s.cfg.Authorizer, id, act)
	if err != nil {
		return err
	}
	if !ok {
		return forbidden(id, act)
	}
	return nil
}

// rateLimitedError is a caller over its records-per-second budget, or over
// a rows-per-second budget (reads and legal holds): then rowsPerSecond is
// that budget's rate.
type rateLimitedError struct {
	caller        string
	retryAfter    time.Duration
	rowsPerSecond float64
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%s is over its rate limit; retry after %s", e.caller, e.retryAfter)
}

// batchTooLargeError is a batch with more records than the caller's burst:
// waiting would never let it pass, so the sender must split it.
type batchTooLargeError struct {
	records, burst int
}

func (e *batchTooLargeError) Error() string {
	return fmt.Sprintf("batch of %d records exceeds the rate-limit burst of %d records per service account; send smaller batches", e.records, e.burst)
}

// allow charges n records to the caller's rate limit.
func (s *Server) allow(now time.Time, id auth.Identity, n int) error {
	ok, retryAfter, err := s.cfg.Limiter.Allow(now, id.Key(), n)
	if errors.Is(err, ratelimit.ErrTooLarge) {
		return &batchTooLargeError{records: n, burst: s.cfg.Limiter.Config().Burst}
	}
	if err != nil {
		return err
	}
	if !ok {
		s.metrics.rateLimited(id.Key())
		return &rateLimitedError{caller: id.Key(), retryAfter: retryAfter}
	}
	return nil
}

// fail is the one place where an error becomes a status and a body. The
// client gets a safe message; the detail is logged once, with a correlation
// ID that a 500's body carries too.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	body, retryAfter := s.classify(err)
	correlationID := edge.CorrelationID()
	if body == nil {
		body = wire.InternalError(correlationID)
	}
	ctx.Response.Header.Set("X-Correlation-ID", correlationID)
	edge.WriteError(ctx, body, retryAfter)
	if bodyUnread(ctx) {
		edge.CloseLingering(ctx)
	}
	// Over its share of the limit here, the caller may have room on another
	// replica: a Kubernetes Service balances connections, not requests, so
	// closing this one lets the retry land anywhere. An agent forwards over
	// one kept-alive connection and would otherwise get this replica's share
	// alone.
	var limited *rateLimitedError
	if errors.As(err, &limited) && s.cfg.Limiter.Share() > 1 {
		ctx.SetConnectionClose()
	}

	status := body.HTTPStatus()
	level := zerolog.InfoLevel
	if status >= 500 {
		level = zerolog.ErrorLevel
	}
	ev := s.log.WithLevel(level).
		Str("correlation_id", correlationID).
		Str("method", string(ctx.Method())).
		Str("path", string(ctx.Path())).
		Int("status", status).
		Str("remote", ctx.RemoteIP().String()).
		Str("error", body.Error)
	// A validation message may quote what the client sent (a field name, a
	// malformed number): the client has it, the log gets the field only, so
	// that no record content reaches the log. Other errors are ours and
	// carry no request content (tokens are redacted by package auth).
	var ve *wire.ValidationError
	if errors.As(err, &ve) {
		ev = ev.Str("field", body.Field)
	} else {
		ev = ev.AnErr("cause", err)
	}
	ev.Msg("request failed")
}

// classify is the answer to err, and how long the client should wait before
// it retries; a nil body is a 500 (fail gives it its correlation ID).
func (s *Server) classify(err error) (body *wire.ErrorBody, retryAfter time.Duration) {
	var (
		ve        *wire.ValidationError
		forbidden *forbiddenError
		limited   *rateLimitedError
		tooMany   *batchTooLargeError
		badSearch *searchRequestError
		conflict  *conflictError
		badQuery  *storage.QueryError
		refused   *edge.Refusal
		// A peer that sent too many tokens that failed review: 429, not
		// 401, so that a client retries after Retry-After.
		authThrottled *auth.ThrottledError
	)
	switch {
	case errors.As(err, &ve):
		return ve.Body(), 0
	case errors.As(err, &badSearch):
		return badSearch.body, 0
	case errors.Is(err, embed.ErrUnavailable):
		return wire.ServiceUnavailable("Embedding provider unavailable"), time.Second
	case errors.Is(err, errBodyRead):
		return wire.ValidationFailed("", "the request body could not be read to its end"), 0
	case errors.Is(err, errBadEncoding):
		return wire.ValidationFailed("", "request body is not valid for its Content-Encoding"), 0
	case errors.As(err, &authThrottled):
		return &wire.ErrorBody{
			Error:   wire.CodeRateLimitExceeded,
			Message: "Too many failed authentications from this address; retry later",
		}, authThrottled.RetryAfter
	case errors.Is(err, errMissingToken), errors.Is(err, auth.ErrUnauthenticated):
		return wire.AuthenticationFailed(), 0
	case errors.Is(err, auth.ErrUnavailable):
		return wire.ServiceUnavailable("Token review is unavailable"), time.Second
	case errors.Is(err, authz.ErrUnavailable):
		return wire.ServiceUnavailable("Authorization is unavailable"), time.Second
	case errors.As(err, &forbidden):
		return forbidden.body(), 0
	case errors.As(err, &tooMany):
		return wire.PayloadTooLarge(tooMany.Error()), 0
	case errors.As(err, &limited) && limited.rowsPerSecond > 0:
		return wire.ReadRateLimitExceeded(limited.rowsPerSecond), limited.retryAfter
	case errors.As(err, &limited):
		return wire.RateLimitExceeded(s.cfg.Limiter.Config().Rate), limited.retryAfter
	case errors.As(err, &conflict):
		return wire.Conflict(conflict.message), 0
	case errors.As(err, &refused):
		return refused.Body, 0
	case errors.As(err, &badQuery):
		field := badQuery.Field
		if field == "after" {
			field = "cursor" // the storage's keyset position is the API's cursor
		}
		return wire.ValidationFailed(field, field+" "+badQuery.Reason), 0
	case errors.Is(err, errQueryTimeout):
		return wire.ServiceUnavailable("The query did not finish in time: narrow it with a time range or fewer combined filters"), time.Second
	case errors.Is(err, errShuttingDown):
		return wire.ServiceUnavailable("Central is shutting down"), time.Second
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return wire.ServiceUnavailable("PostgreSQL connection failed"), time.Second
	default:
		return nil, 0
	}
}
