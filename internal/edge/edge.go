// Package edge holds what the agent's and the central's fasthttp servers
// share at the HTTP edge: the one writer of error answers (the spec's JSON
// body, Retry-After, correlation IDs), the refusals either server makes
// whatever the endpoint (not found, wrong method, too large, wrong media),
// the answer to requests fasthttp itself could not read, and the logger
// that keeps what fasthttp says about them free of request content. It
// knows nothing of either program.
package edge

import (
	"errors"
	"io"
	"mime"
	"net"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/wire"
)

// ParseError answers a request fasthttp could not read (its ErrorHandler):
// too large a body, headers beyond the read buffer, a client too slow for the
// read timeout, or malformed HTTP, each with the JSON error body.
func ParseError(ctx *fasthttp.RequestCtx, err error) {
	var (
		small  *fasthttp.ErrSmallBuffer
		netErr net.Error
		body   *wire.ErrorBody
	)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		body = wire.PayloadTooLarge("request body exceeds the server's limit")
	case errors.As(err, &small):
		body = wire.HeadersTooLarge()
	case errors.As(err, &netErr) && netErr.Timeout():
		body = wire.RequestTimeout()
	default:
		body = wire.ValidationFailed("", "malformed HTTP request")
	}
	ctx.SetConnectionClose()
	WriteError(ctx, body, 0)
}

// IsJSON reports whether a Content-Type names JSON the servers can read:
// application/json, with a charset only if it is UTF-8 (records are decoded
// as UTF-8). An empty type is the caller's to allow (the spec's clients
// always send one; curl users may not).
func IsJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// Logger is a fasthttp.Logger (Server.Logger) that writes fasthttp's own
// messages to log at level without their arguments: for a request fasthttp
// could not parse, its error quotes the raw request buffer, bearer token and
// record included, and nothing from a request may reach a log. It logs the
// format string (fasthttp's constant text, such as "error when serving
// connection %q<->%q: %v") and a class for each error argument.
func Logger(log zerolog.Logger, level zerolog.Level) fasthttp.Logger {
	return connLogger{log: log, level: level}
}

type connLogger struct {
	log   zerolog.Logger
	level zerolog.Level
}

func (l connLogger) Printf(format string, args ...any) {
	ev := l.log.WithLevel(l.level)
	if !ev.Enabled() {
		return
	}
	for _, a := range args {
		if err, ok := a.(error); ok {
			ev = ev.Str("class", connErrorClass(err))
		}
	}
	ev.Str("fasthttp", format).Msg("http connection error")
}

// connErrorClass names an error of fasthttp's without repeating its text.
func connErrorClass(err error) string {
	var (
		netErr net.Error
		small  *fasthttp.ErrSmallBuffer
	)
	switch msg := err.Error(); {
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "body_too_large"
	case errors.As(err, &small):
		return "headers_too_large"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_closed"
	case strings.HasPrefix(msg, "error when reading request headers"):
		return "malformed_headers"
	case strings.HasPrefix(msg, "error when reading request body"):
		return "malformed_body"
	default:
		return "other"
	}
}
