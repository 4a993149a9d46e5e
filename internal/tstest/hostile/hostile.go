// Package hostile is the table of adversarial requests that both programs
// speaking the audit API (the agent and the central) must answer with their
// documented status and JSON error body, storing nothing. It is test
// infrastructure: production code never imports it. It imports wire (for
// limits and error codes) and nothing of either program.
package hostile

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kubernaut/datastorage/wire"
)

// Target is a program the table runs against.
type Target int

const (
	// Central authenticates every request (a bearer token per writer).
	Central Target = iota
	// Agent has no authentication (loopback only), no batch endpoint, and
	// takes records up to wire.MaxRecordBytes.
	Agent
)

func (t Target) String() string {
	if t == Agent {
		return "agent"
	}
	return "central"
}

// Token values of Request.Token that the caller resolves; any other value is
// sent verbatim as "Authorization: Bearer <Token>".
const (
	TokenWriter   = ""           // a writer allowed to write remediation audits
	TokenNone     = "-"          // no Authorization header (or the one in Headers)
	TokenOutsider = "@outsider@" // a valid token of a service account outside the allow-list
)

// Expect is the answer a target must give. A zero Status means the row does
// not apply to that target (Why says why).
type Expect struct {
	Status int
	Code   string // the JSON body's "error"
	Why    string // for a row that does not apply, or answers differently on this target
}

// Applies reports whether the row runs against the target.
func (e Expect) Applies() bool { return e.Status != 0 }

// Request is one adversarial request and the answer each target must give.
type Request struct {
	Name    string
	Method  string // POST when empty
	Path    string // the remediation endpoint when empty
	Token   string // TokenWriter, TokenNone, TokenOutsider or a literal
	Headers map[string]string
	Body    []byte
	Central Expect
	Agent   Expect
}

// Expect returns the row's expectation for t.
func (r Request) Expect(t Target) Expect {
	if t == Agent {
		return r.Agent
	}
	return r.Central
}

// NewHTTP builds the request against base (scheme://host:port). tokenFor
// resolves TokenWriter and TokenOutsider to bearer tokens.
func (r Request) NewHTTP(base string, tokenFor func(string) string) (*http.Request, error) {
	method, path := r.Method, r.Path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/api/v1/audit/remediation"
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("hostile %q: %w", r.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch r.Token {
	case TokenNone:
	case TokenWriter, TokenOutsider:
		if tokenFor != nil {
			if tok := tokenFor(r.Token); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
		}
	default:
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Gzip compresses b (for bodies of the table and of tests).
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// Zstd compresses b.
func Zstd(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func both(status int, code string) (Expect, Expect) {
	return Expect{Status: status, Code: code}, Expect{Status: status, Code: code}
}

// Requests is the table: at least 40 rows; each states its answer per target.
func Requests() []Request {
	valid := []byte(`{"remediationRequestID":"rr-1"}`)
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	manyRecords := `{"records":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"remediation","record":{"remediationRequestID":"r"}},`, wire.MaxBatchRecords+1), ",") + `]}`
	bombJSON := append([]byte(`{"remediationRequestID":"rr-1","reasoning":"`), bytes.Repeat([]byte("a"), 8<<20)...)
	bombJSON = append(bombJSON, `"}`...)
	const batch = "/api/v1/audit/batch"
	noBatch := Expect{Status: 404, Code: wire.CodeNotFound, Why: "the agent has no batch endpoint"}
	noAuth := Expect{Why: "the agent has no authentication: tokens are the central's concern"}
	var (
		bad   = func() (Expect, Expect) { return both(400, wire.CodeValidationFailed) }
		media = func() (Expect, Expect) { return both(415, wire.CodeUnsupportedMediaType) }
	)
	row := func(r Request, c, a Expect) Request { r.Central, r.Agent = c, a; return r }
	rows := []Request{}
	add := func(r Request, e func() (Expect, Expect)) {
		c, a := e()
		rows = append(rows, row(r, c, a))
	}
	// Sizes and compression (the limit applies after decompression).
	add(Request{Name: "record over 64 KiB", Body: fmt.Appendf(nil, `{"remediationRequestID":"rr-1","reasoning":%q}`, strings.Repeat("x", 70<<10))},
		func() (Expect, Expect) { return both(413, wire.CodePayloadTooLarge) })
	rows = append(rows, row(Request{Name: "gzip bomb on a single record", Headers: map[string]string{"Content-Encoding": "gzip"}, Body: Gzip(bombJSON)},
		Expect{Status: 413, Code: wire.CodePayloadTooLarge},
		Expect{Status: 415, Code: wire.CodeUnsupportedMediaType, Why: "the agent takes uncompressed records only (loopback)"}))
	rows = append(rows, row(Request{Name: "zstd bomb on a batch", Path: batch, Headers: map[string]string{"Content-Encoding": "zstd"}, Body: Zstd(bytes.Repeat([]byte(" "), wire.MaxBatchBytes+1))},
		Expect{Status: 413, Code: wire.CodePayloadTooLarge}, noBatch))
	rows = append(rows, row(Request{Name: "gzip header on a plain body", Headers: map[string]string{"Content-Encoding": "gzip"}, Body: valid},
		Expect{Status: 400, Code: wire.CodeValidationFailed},
		Expect{Status: 415, Code: wire.CodeUnsupportedMediaType, Why: "the agent takes uncompressed records only (loopback)"}))
	rows = append(rows, row(Request{Name: "zstd header on a plain body", Headers: map[string]string{"Content-Encoding": "zstd"}, Body: valid},
		Expect{Status: 400, Code: wire.CodeValidationFailed},
		Expect{Status: 415, Code: wire.CodeUnsupportedMediaType, Why: "the agent takes uncompressed records only (loopback)"}))
	add(Request{Name: "unsupported content encoding", Headers: map[string]string{"Content-Encoding": "br"}, Body: valid}, media)
	rows = append(rows, row(Request{Name: "more records than a batch may hold", Path: batch, Body: []byte(manyRecords)},
		Expect{Status: 400, Code: wire.CodeValidationFailed}, noBatch))
	// Malformed JSON.
	add(Request{Name: "deep nesting", Body: []byte(deep)}, bad)
	add(Request{Name: "deep nesting inside a field", Body: []byte(`{"remediationRequestID":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`)}, bad)
	add(Request{Name: "invalid UTF-8 in a value", Body: []byte("{\"remediationRequestID\":\"rr-\xff\xfe\"}")}, bad)
	add(Request{Name: "invalid UTF-8 in a key", Body: []byte("{\"remediation\xffRequestID\":\"rr-1\"}")}, bad)
	add(Request{Name: "NUL character", Body: []byte(`{"remediationRequestID":"rr-\u0000"}`)}, bad)
	add(Request{Name: "empty body", Body: nil}, bad)
	add(Request{Name: "null", Body: []byte(`null`)}, bad)
	add(Request{Name: "array instead of object", Body: []byte(`[{"remediationRequestID":"rr-1"}]`)}, bad)
	add(Request{Name: "trailing garbage", Body: []byte(`{"remediationRequestID":"rr-1"} {"x":1}`)}, bad)
	add(Request{Name: "duplicate keys", Body: []byte(`{"remediationRequestID":"rr-1","remediationRequestID":"rr-2"}`)}, bad)
	add(Request{Name: "unknown field", Body: []byte(`{"remediationRequestID":"rr-1","admin":true}`)}, bad)
	add(Request{Name: "NaN literal", Body: []byte(`{"remediationRequestID":"rr-1","confidence":NaN}`)}, bad)
	add(Request{Name: "number overflow", Body: []byte(`{"remediationRequestID":"rr-1","confidence":1e400}`)}, bad)
	add(Request{Name: "name longer than its column", Body: fmt.Appendf(nil, `{"remediationRequestID":%q}`, strings.Repeat("r", 256))}, bad)
	add(Request{Name: "negative duration", Body: []byte(`{"remediationRequestID":"rr-1","duration":-5}`)}, bad)
	add(Request{Name: "timestamp in year 9999", Body: []byte(`{"remediationRequestID":"rr-1","createdAt":"9999-01-01T00:00:00Z"}`)}, bad)
	add(Request{Name: "missing required field", Body: []byte(`{"alertName":"HighMemoryUsage"}`)}, bad)
	add(Request{Name: "SQL in a numeric field", Body: []byte(`{"remediationRequestID":"rr-1","confidence":"1; DROP TABLE remediation_audit"}`)}, bad)
	rows = append(rows, row(Request{Name: "batch records not an array", Path: batch, Body: []byte(`{"records":{"kind":"remediation"}}`)},
		Expect{Status: 400, Code: wire.CodeValidationFailed}, noBatch))
	// Headers, methods, paths.
	add(Request{Name: "text/plain", Headers: map[string]string{"Content-Type": "text/plain"}, Body: valid}, media)
	add(Request{Name: "form encoded", Headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: valid}, media)
	add(Request{Name: "latin-1 charset", Headers: map[string]string{"Content-Type": "application/json; charset=latin1"}, Body: valid}, media)
	rows = append(rows, row(Request{Name: "GET on a write endpoint", Method: "GET"},
		Expect{Status: 403, Code: wire.CodeAuthorizationFailed, Why: "GET is the central's query, and a writer may not read:audit"},
		Expect{Status: 405, Code: wire.CodeMethodNotAllowed}))
	rows = append(rows, row(Request{Name: "GET on the batch endpoint", Method: "GET", Path: batch},
		Expect{Status: 405, Code: wire.CodeMethodNotAllowed}, noBatch))
	add(Request{Name: "PUT on a write endpoint", Method: "PUT", Body: valid}, func() (Expect, Expect) { return both(405, wire.CodeMethodNotAllowed) })
	rows = append(rows, row(Request{Name: "DELETE on the batch endpoint", Method: "DELETE", Path: batch},
		Expect{Status: 405, Code: wire.CodeMethodNotAllowed}, noBatch))
	add(Request{Name: "unknown path", Path: "/api/v1/audit/everything", Body: valid}, func() (Expect, Expect) { return both(404, wire.CodeNotFound) })
	add(Request{Name: "path with a traversal", Path: "/api/v1/../../etc/passwd", Body: valid}, func() (Expect, Expect) { return both(404, wire.CodeNotFound) })
	add(Request{Name: "Idempotency-Key with non-ASCII characters", Headers: map[string]string{"Idempotency-Key": "k-\u00fc"}, Body: valid}, bad)
	add(Request{Name: "Idempotency-Key too long", Headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}, Body: valid}, bad)
	add(Request{Name: "Idempotency-Key sent empty", Headers: map[string]string{"Idempotency-Key": ""}, Body: valid}, bad)
	// Tokens (central only).
	auth := func(r Request, status int, code string) {
		rows = append(rows, row(r, Expect{Status: status, Code: code}, noAuth))
	}
	auth(Request{Name: "no Authorization", Token: TokenNone, Body: valid}, 401, wire.CodeAuthenticationFailed)
	auth(Request{Name: "empty bearer token", Headers: map[string]string{"Authorization": "Bearer "}, Token: TokenNone, Body: valid}, 401, wire.CodeAuthenticationFailed)
	auth(Request{Name: "Basic credentials", Headers: map[string]string{"Authorization": "Basic Z3c6cHc="}, Token: TokenNone, Body: valid}, 401, wire.CodeAuthenticationFailed)
	auth(Request{Name: "malformed bearer", Headers: map[string]string{"Authorization": "Bearer a b c"}, Token: TokenNone, Body: valid}, 401, wire.CodeAuthenticationFailed)
	auth(Request{Name: "expired or unknown token", Token: "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", Body: valid}, 401, wire.CodeAuthenticationFailed)
	auth(Request{Name: "service account outside the allow-list", Token: TokenOutsider, Body: valid}, 403, wire.CodeAuthorizationFailed)
	auth(Request{Name: "SQL in the token", Token: "x' OR '1'='1", Body: valid}, 401, wire.CodeAuthenticationFailed)
	// Authorization comes before the body: a caller that may write nothing
	// is 403 whatever its items, and an unauthenticated 16 MiB body is 401.
	auth(Request{Name: "invalid items from a writer of no kind", Path: batch, Token: TokenOutsider,
		Body: []byte(`{"records":[{"kind":"remediation","record":{"alertName":"no id"}}]}`)}, 403, wire.CodeAuthorizationFailed)
	auth(Request{Name: "16 MiB batch without a token", Path: batch, Token: TokenNone,
		Body: bytes.Repeat([]byte(" "), wire.MaxBatchBytes)}, 401, wire.CodeAuthenticationFailed)
	return rows
}
