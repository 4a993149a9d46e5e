package edge

import (
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Bounds of a lingering close: how long, and how much of an unread body, a
// refused client may still send after its answer. A body is at most 16 MiB
// (wire.MaxBatchBytes), sent in milliseconds on a cluster network.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 32 << 20
)

// CloseLingering answers with what the handler set and ends the
// connection, for a request refused before its body was read (the servers
// authorize from the headers first). Closing with the body still arriving
// would make the kernel reset the connection, and a reset can destroy the
// answer before the client reads it: a client sending a large batch with a
// bad token would see "connection reset" instead of 401. So, like a web
// server's lingering close, it sends the answer with "Connection: close",
// closes the sending side, and reads and discards what the client still
// sends, for at most lingerTimeout and lingerMaxBytes, before closing.
// Discarding holds no more memory than a copy buffer.
func CloseLingering(ctx *fasthttp.RequestCtx) {
	raw := ctx.Conn() // *net.TCPConn or *tls.Conn: both close their sending side alone
	ctx.Response.SetConnectionClose()
	answer := []byte(ctx.Response.String())
	// fasthttp closes a "Connection: close" connection as soon as it has
	// answered, without a hijack handler; so the handler answers itself.
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if _, err := c.Write(answer); err != nil {
			return
		}
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = raw.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c, lingerMaxBytes)
	})
}
