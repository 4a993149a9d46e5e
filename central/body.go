package central

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kubernaut/datastorage/internal/edge"
)

var (
	errBodyTooLarge     = errors.New("request body too large")
	errUnsupportedMedia = errors.New("unsupported media type")
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
	return fmt.Errorf("%w: %q: send application/json (UTF-8)", errUnsupportedMedia, ct)
}

// decode returns the uncompressed body, at most limit bytes long. body may
// be fasthttp's buffer: the result is always a fresh copy or a decompression,
// never an alias, so it can outlive the request.
func (d *bodyDecoder) decode(body []byte, encoding string, limit int) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		if len(body) > limit {
			return nil, fmt.Errorf("%w: %d bytes, limit %d", errBodyTooLarge, len(body), limit)
		}
		return bytes.Clone(body), nil
	case "zstd":
		out, err := d.zstd.DecodeAll(body, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) || len(out) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes after zstd decompression", errBodyTooLarge, limit)
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
			return nil, fmt.Errorf("%w: more than %d bytes after gzip decompression", errBodyTooLarge, limit)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q: send gzip, zstd or identity", errUnsupportedMedia, encoding)
	}
}

var errBadEncoding = errors.New("malformed compressed body")
