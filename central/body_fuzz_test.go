package central

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/wire"
)

// FuzzDecodeBody feeds arbitrary compressed bodies to the request-body
// decoder: it must never panic, never return more than its limit, and fail
// only with the errors the HTTP edge maps to 400, 413 or 415.
func FuzzDecodeBody(f *testing.F) {
	const limit = 4 << 10
	d, err := newBodyDecoder(limit)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.close)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(`{"remediationRequestID":"rr-1"}`))
	_ = w.Close()
	enc, _ := zstd.NewWriter(nil)
	f.Add(gz.Bytes(), "gzip")
	f.Add(enc.EncodeAll([]byte(`{"records":[]}`), nil), "zstd")
	f.Add(enc.EncodeAll(bytes.Repeat([]byte("a"), limit+1), nil), "zstd")
	f.Add([]byte(`{"remediationRequestID":"rr-1"}`), "")
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, "gzip")
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd")

	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		out, err := d.decode(body, encoding, limit)
		if err != nil {
			var refused *edge.Refusal
			switch {
			case errors.Is(err, errBadEncoding):
			case errors.As(err, &refused) && (refused.Body.Error == wire.CodePayloadTooLarge || refused.Body.Error == wire.CodeUnsupportedMediaType):
			default:
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("decoded %d bytes, limit %d", len(out), limit)
		}
	})
}
