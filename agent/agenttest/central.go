// Package agenttest holds test helpers for the agent. Central is an in-process stand-in for the central's
// POST /api/v1/audit/batch and GET /api/v1/access, faithful to the contract the forwarder is built
// against: zstd or gzip bodies, wire.DecodeBatch, one result per record
// (persisted, duplicate by ID, rejected with the validation error, or with
// authorization_failed for a kind the caller may not write), bearer token
// check, per-token grants (403 for a caller that may write no kind), a
// record-count limit (413), and scripted failures. For tests only.
package agenttest

import (
	"compress/gzip"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/klauspost/compress/zstd"

	"github.com/kubernaut/datastorage/wire"
)

// Reply is a scripted answer to one batch request.
type Reply struct {
	Status     int
	RetryAfter string
	// Body is the error body; nil: the usual one for Status.
	Body *wire.ErrorBody
}

// Central records what it stored.
type Central struct {
	*httptest.Server

	mu       sync.Mutex
	token    string
	maxBatch int
	script   []Reply
	reject   func(wire.Record) *wire.ErrorBody
	stored   map[string]wire.Record
	order    []string
	requests []Request

	grants       map[string]Grant // by token
	accessStatus int
	accessReqs   []Request
}

// Actions a grant may hold, as the central's allow-list names them.
const (
	WriteRemediation = "write:remediation"
	WriteWorkflow    = "write:workflow"
	ReadSimilar      = "read:similar"
)

// Grant is what one token's caller is and may do.
type Grant struct {
	Identity string   // "namespace/name"
	Actions  []string // WriteRemediation, WriteWorkflow, ReadSimilar
}

// DefaultIdentity is the identity of a token without a grant, which may do
// everything.
const DefaultIdentity = "test/writer"

func (g Grant) may(action string) bool { return slices.Contains(g.Actions, action) }

func (g Grant) writesAnything() bool { return g.may(WriteRemediation) || g.may(WriteWorkflow) }

// Request is what one POST carried.
type Request struct {
	At     time.Time
	Token  string
	IDs    []string
	Status int
}

// NewCentral starts a fake central. token "" accepts any caller.
func NewCentral(token string) *Central {
	c := &Central{token: token, stored: map[string]wire.Record{}, grants: map[string]Grant{}}
	c.Server = httptest.NewServer(http.HandlerFunc(c.handle))
	return c
}

// NewTLSCentral starts a fake central over https with httptest's
// self-signed certificate (valid for 127.0.0.1); WriteCAFile saves it as PEM.
func NewTLSCentral(token string) *Central {
	c := &Central{token: token, stored: map[string]wire.Record{}, grants: map[string]Grant{}}
	c.Server = httptest.NewTLSServer(http.HandlerFunc(c.handle))
	return c
}

// WriteCAFile writes the server's certificate as a PEM file (the CA bundle a
// client must trust for a TLS central) and returns its path.
func (c *Central) WriteCAFile(dir string) (string, error) {
	path := filepath.Join(dir, "central-ca.pem")
	cert := c.Certificate()
	if cert == nil {
		return "", errors.New("agenttest: central is not TLS")
	}
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
}

// SetToken changes the accepted token.
func (c *Central) SetToken(tok string) { c.mu.Lock(); c.token = tok; c.mu.Unlock() }

// SetMaxBatch makes batches with more records answer 413 (0: no limit).
func (c *Central) SetMaxBatch(n int) { c.mu.Lock(); c.maxBatch = n; c.mu.Unlock() }

// Script queues answers for the next requests (before any processing).
func (c *Central) Script(r ...Reply) { c.mu.Lock(); c.script = append(c.script, r...); c.mu.Unlock() }

// Reject makes records for which fn returns a body rejected.
func (c *Central) Reject(fn func(wire.Record) *wire.ErrorBody) {
	c.mu.Lock()
	c.reject = fn
	c.mu.Unlock()
}

// Grant sets what the caller with token is and may do, as an operator
// changes RBAC: batch items of a kind it may not write are rejected with
// authorization_failed (the others are stored), a caller that may write no
// kind gets 403 for the whole batch, and GET /api/v1/access lists actions.
// A token without a grant may do everything, as DefaultIdentity.
func (c *Central) Grant(token, identity string, actions ...string) {
	c.mu.Lock()
	c.grants[token] = Grant{Identity: identity, Actions: actions}
	c.mu.Unlock()
}

// SetAccessStatus makes GET /api/v1/access answer status with its error body
// (404: a central older than the endpoint; 503: unavailable); 0 restores the
// contract's 200.
func (c *Central) SetAccessStatus(status int) {
	c.mu.Lock()
	c.accessStatus = status
	c.mu.Unlock()
}

// AccessRequests is every GET /api/v1/access received (Requests has the
// batches only).
func (c *Central) AccessRequests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.accessReqs...)
}

func (c *Central) grant(token string) Grant {
	if g, ok := c.grants[token]; ok {
		return g
	}
	return Grant{Identity: DefaultIdentity, Actions: []string{WriteRemediation, WriteWorkflow, ReadSimilar}}
}

// Stored is the stored IDs in arrival order.
func (c *Central) Stored() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}

// Has reports whether id was stored.
func (c *Central) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.stored[id]
	return ok
}

// Requests is every request received.
func (c *Central) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

func (c *Central) handle(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := Request{At: time.Now()}
	tok, _ := cutBearer(r.Header.Get("Authorization"))
	req.Token = tok
	if r.URL.Path == "/api/v1/access" {
		req.Status = c.serveAccess(w, r, tok)
		c.accessReqs = append(c.accessReqs, req)
		return
	}
	status := c.serve(w, r, &req)
	req.Status = status
	c.requests = append(c.requests, req)
}

// serveAccess is GET /api/v1/access: the caller's identity and actions.
func (c *Central) serveAccess(w http.ResponseWriter, r *http.Request, tok string) int {
	if r.Method != http.MethodGet {
		return writeErr(w, wire.MethodNotAllowed())
	}
	switch c.accessStatus {
	case 0:
	case http.StatusNotFound:
		return writeErr(w, wire.NotFound())
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		return writeErr(w, wire.ServiceUnavailable(""))
	case http.StatusUnauthorized:
		return writeErr(w, wire.AuthenticationFailed())
	default:
		return writeErr(w, wire.InternalError("scripted"))
	}
	if c.token != "" && tok != c.token {
		return writeErr(w, wire.AuthenticationFailed())
	}
	g := c.grant(tok)
	b, _ := json.Marshal(struct {
		Identity string   `json:"identity"`
		Actions  []string `json:"actions"`
	}{g.Identity, append(make([]string, 0, len(g.Actions)), g.Actions...)})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return http.StatusOK
}

func cutBearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) > len(p) && h[:len(p)] == p {
		return h[len(p):], true
	}
	return "", false
}

func (c *Central) serve(w http.ResponseWriter, r *http.Request, req *Request) int {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/audit/batch" {
		return writeErr(w, wire.NotFound())
	}
	var body io.Reader = r.Body
	switch r.Header.Get("Content-Encoding") {
	case "zstd":
		d, err := zstd.NewReader(r.Body)
		if err != nil {
			return writeErr(w, wire.ValidationFailed("", err.Error()))
		}
		defer d.Close()
		body = d
	case "gzip":
		g, err := gzip.NewReader(r.Body)
		if err != nil {
			return writeErr(w, wire.ValidationFailed("", err.Error()))
		}
		body = g
	}
	raw, err := io.ReadAll(io.LimitReader(body, wire.MaxBatchBytes+1))
	if err != nil {
		return writeErr(w, wire.ValidationFailed("", err.Error()))
	}
	batch, derr := wire.DecodeBatch(raw)
	if batch != nil {
		for _, it := range batch.Records {
			req.IDs = append(req.IDs, it.ID)
		}
	}
	if len(c.script) > 0 {
		s := c.script[0]
		c.script = c.script[1:]
		if s.RetryAfter != "" {
			w.Header().Set("Retry-After", s.RetryAfter)
		}
		body := wire.InternalError("scripted")
		switch s.Status {
		case 401:
			body = wire.AuthenticationFailed()
		case 429:
			body = wire.RateLimitExceeded(100)
		case 503:
			body = wire.ServiceUnavailable("scripted")
		}
		if s.Body != nil {
			body = s.Body
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.Status)
		_, _ = w.Write(body.Marshal())
		return s.Status
	}
	if c.token != "" && req.Token != c.token {
		return writeErr(w, wire.AuthenticationFailed())
	}
	g := c.grant(req.Token)
	if !g.writesAnything() {
		return writeErr(w, wire.AuthorizationFailed())
	}
	if derr != nil {
		if verr, ok := derr.(*wire.ValidationError); ok {
			return writeErr(w, verr.Body())
		}
		return writeErr(w, wire.ValidationFailed("", derr.Error()))
	}
	if c.maxBatch > 0 && len(batch.Records) > c.maxBatch {
		return writeErr(w, wire.PayloadTooLarge("Batch of "+strconv.Itoa(len(batch.Records))+" records exceeds the burst"))
	}
	var resp wire.BatchResponse
	for i, it := range batch.Records {
		rec, err := it.Decode(time.Now())
		res := wire.ItemResult{ID: it.ID}
		kind, kerr := wire.ParseKind(string(it.Kind))
		switch {
		case kerr == nil && !g.may("write:"+string(kind)):
			res.Status, res.Error = wire.StatusRejected, &wire.ErrorBody{Error: wire.CodeAuthorizationFailed,
				Message: g.Identity + " may not write " + string(kind) + " audits", Field: "records[" + strconv.Itoa(i) + "].kind"}
		case err != nil:
			res.Status, res.Error = wire.StatusRejected, err.(*wire.ValidationError).Body()
		case c.reject != nil && c.reject(rec) != nil:
			res.Status, res.Error = wire.StatusRejected, c.reject(rec)
		default:
			if _, dup := c.stored[rec.ID]; dup {
				res.Status = wire.StatusDuplicate
				resp.Duplicates++
			} else {
				c.stored[rec.ID] = rec
				c.order = append(c.order, rec.ID)
				res.Status = wire.StatusPersisted
				resp.Persisted++
			}
		}
		if res.Status == wire.StatusRejected {
			resp.Rejected++
		}
		resp.Results = append(resp.Results, res)
	}
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return http.StatusOK
}

func writeErr(w http.ResponseWriter, b *wire.ErrorBody) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(b.HTTPStatus())
	_, _ = w.Write(b.Marshal())
	return b.HTTPStatus()
}
