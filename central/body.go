package central

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/internal/edge"
)

// bodyDecoder turns a request body into JSON bytes: it checks the content
// type, undoes Content-Encoding and bounds the size after decompression, so a
// small compressed body cannot expand into a memory bomb.
type bodyDecoder struct {
	zstd *zstd.Decoder // DecodeAll is safe for concurrent use
}

func newBodyDecoder(maxBytes int) (*bodyDecoder, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(maxBytes)), zstd.WithDecoderMaxWindow(uint64(maxBytes)))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &bodyDecoder{zstd: d}, nil
}

func (d *bodyDecoder) close() { d.zstd.Close() }

// checkContentType accepts application/json (with parameters) and, for the
// spec's clients that omit the header, nothing at all.
func checkContentType(ct string) error {
	if ct == "" || edge.IsJSON(ct) {
		return nil
	}
	return edge.UnsupportedMedia(fmt.Sprintf("unsupported media type: %q: send application/json (UTF-8)", ct))
}

// requestBody reads the request body as sent (compressed or not), at most
// limit bytes, into a buffer of its own that may outlive the request. The
// server streams request bodies (fasthttp's StreamRequestBody): until a
// handler calls this, at most fasthttp's 8 KiB prefetch has been read, so a
// caller refused on its headers costs no body read.
func requestBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	n := ctx.Request.Header.ContentLength()
	if n > limit {
		return nil, tooLarge("%d bytes, limit %d", n, limit) // unread: fail closes lingering
	}
	ctx.SetUserValue(bodyReadKey{}, true)
	stream := ctx.RequestBodyStream()
	if stream == nil { // a server that does not stream: the body is in memory
		return bytes.Clone(ctx.Request.Body()), nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(n, 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(stream, int64(limit)+1)); err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyRead, err)
	}
	if buf.Len() > limit {
		return nil, tooLarge("more than %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// bodyReadKey marks a request whose handler read (or tried to read) its
// body: one that did not, and was refused, closes lingering (fail).
type bodyReadKey struct{}

// bodyUnread reports whether the request has a body its handler never
// read: the client may still be sending it.
func bodyUnread(ctx *fasthttp.RequestCtx) bool {
	return ctx.Request.Header.ContentLength() != 0 && ctx.UserValue(bodyReadKey{}) == nil
}

// errBodyRead is a body the client did not finish sending.
var errBodyRead = errors.New("reading the request body failed")

// decode returns the uncompressed body, at most limit bytes long. body is
// the caller's (requestBody's buffer): an uncompressed body is returned as
// is, so it must not alias fasthttp's buffers.
func (d *bodyDecoder) decode(body []byte, encoding string, limit int) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		if len(body) > limit {
			return nil, tooLarge("%d bytes, limit %d", len(body), limit)
		}
		return body, nil
	case "zstd":
		out, err := d.zstd.DecodeAll(body, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) || len(out) > limit {
			return nil, tooLarge("more than %d bytes after zstd decompression", limit)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: zstd body: %v", errBadEncoding, err)
		}
		return out, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip body: %v", errBadEncoding, err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip body: %v", errBadEncoding, err)
		}
		if len(out) > limit {
			return nil, tooLarge("more than %d bytes after gzip decompression", limit)
		}
		return out, nil
	default:
		return nil, edge.UnsupportedMedia(fmt.Sprintf("unsupported media type: Content-Encoding %q: send gzip, zstd or identity", encoding))
	}
}

var errBadEncoding = errors.New("malformed compressed body")

// tooLarge is the 413 of a body beyond its limit, saying by how much.
func tooLarge(format string, args ...any) error {
	return edge.TooLarge("request body too large: " + fmt.Sprintf(format, args...))
}
