// Package edge holds what the agent's and the central's fasthttp servers
// share at the HTTP edge: the answer to requests fasthttp itself could not
// read. It knows nothing of either program.
package edge

import (
	"errors"
	"mime"
	"net"
	"strings"

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
	ctx.SetStatusCode(body.HTTPStatus())
	ctx.SetContentType("application/json")
	ctx.SetBody(body.Marshal())
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
