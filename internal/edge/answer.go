package edge

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/wire"
)

// Refusal is a request a server answers at its edge, whatever the endpoint:
// no such path, a method the path does not take, a body too large or of a
// type it does not read. It carries the answer, so that handlers return it
// like any other error and each server's error mapper passes it through.
type Refusal struct {
	Body *wire.ErrorBody
}

func (r *Refusal) Error() string { return r.Body.Error + ": " + r.Body.Message }

// NotFound refuses a path no endpoint serves.
func NotFound() error { return &Refusal{Body: wire.NotFound()} }

// MethodNotAllowed refuses a method the endpoint does not take, naming the
// ones it does in the Allow header ("GET, DELETE").
func MethodNotAllowed(ctx *fasthttp.RequestCtx, allow string) error {
	ctx.Response.Header.Set("Allow", allow)
	return &Refusal{Body: wire.MethodNotAllowed()}
}

// TooLarge refuses a body beyond the endpoint's limit; message says which.
func TooLarge(message string) error { return &Refusal{Body: wire.PayloadTooLarge(message)} }

// UnsupportedMedia refuses a Content-Type or Content-Encoding the endpoint
// does not read; message says what it takes.
func UnsupportedMedia(message string) error {
	return &Refusal{Body: wire.UnsupportedMediaType(message)}
}

// WriteError answers with body: its status, its JSON and, when retryAfter
// is positive, Retry-After in whole seconds, rounded up.
func WriteError(ctx *fasthttp.RequestCtx, body *wire.ErrorBody, retryAfter time.Duration) {
	if retryAfter > 0 {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	ctx.SetStatusCode(body.HTTPStatus())
	ctx.SetContentType("application/json")
	ctx.SetBody(body.Marshal())
}

// WriteJSON answers status with v as JSON. Only the servers' own answer
// types go through it, and they always encode; an error means a bug.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// CorrelationID names one failed request in its 500 answer, its
// X-Correlation-ID header and its log line: "req-" and 16 hex digits.
func CorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return "req-" + hex.EncodeToString(b[:])
}
