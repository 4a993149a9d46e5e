package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"

	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/tokenfile"
	"github.com/kubernaut/datastorage/wire"
)

// maxAnswerBytes bounds how much of an answer is read: a page of the
// largest records (wire.MaxPageSize of them, each up to two MaxTextLen
// texts) fits.
const maxAnswerBytes = 128 << 20

// Client writes audit records to an agent or the central. It is safe for
// concurrent use; create one per process and share it.
type Client struct {
	cfg    Config
	base   string
	http   *http.Client
	tokens *tokenfile.Source // nil: cfg.Token, fixed
	owned  *http.Transport   // the default transport, closed by Close
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:  cfg,
		base: strings.TrimRight(cfg.BaseURL, "/"),
	}
	if cfg.TokenFile != "" {
		c.tokens = tokenfile.New(cfg.TokenFile)
	}
	if cfg.HTTPClient != nil {
		c.http = cfg.HTTPClient
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.MaxIdleConnsPerHost
		tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
		tr.IdleConnTimeout = 90 * time.Second
		c.owned = tr
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

// Close releases idle connections of the default transport. It is
// idempotent; the Client must not be used afterwards.
func (c *Client) Close(context.Context) error {
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
	return nil
}

type keyCtx struct{}

// WithIdempotencyKey makes the write made with ctx use key as its
// Idempotency-Key instead of a fresh random one: a caller that retries a
// logical write itself (after a crash, say) passes the same key again.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

func idempotencyKey(ctx context.Context) string {
	if k, ok := ctx.Value(keyCtx{}).(string); ok && k != "" {
		return k
	}
	return uuid.NewString()
}

// WriteRemediationAudit sends one remediation audit (Gateway, AI Analysis,
// Kubernetes Executor) and returns the server's 201 answer: status
// "persisted" from the central, "buffered" from an agent.
func (c *Client) WriteRemediationAudit(ctx context.Context, a *wire.RemediationAudit) (*wire.WriteResponse, error) {
	if a == nil {
		return nil, errors.New("write remediation audit: nil audit")
	}
	return c.writeOne(ctx, wire.KindRemediation, a)
}

// WriteWorkflowAudit sends one workflow step audit (Workflow Execution).
func (c *Client) WriteWorkflowAudit(ctx context.Context, a *wire.WorkflowAudit) (*wire.WriteResponse, error) {
	if a == nil {
		return nil, errors.New("write workflow audit: nil audit")
	}
	return c.writeOne(ctx, wire.KindWorkflow, a)
}

func (c *Client) writeOne(ctx context.Context, kind wire.Kind, a any) (*wire.WriteResponse, error) {
	op := "write " + string(kind) + " audit"
	body, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	hdr := http.Header{"Idempotency-Key": {idempotencyKey(ctx)}}
	var out wire.WriteResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/audit/"+string(kind), hdr, body, http.StatusCreated, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &out, nil
}

// WriteBatch sends records to POST /api/v1/audit/batch (the central only: an
// agent takes single records). A record without an ID is given one
// (wire.NewID) before the first attempt, on a copy, so that every retry
// carries the same IDs; the IDs are in the answer's results, in order.
// At most wire.MaxBatchRecords records.
func (c *Client) WriteBatch(ctx context.Context, records []wire.Record) (*wire.BatchResponse, error) {
	recs := make([]wire.Record, len(records))
	copy(recs, records)
	for i := range recs {
		if recs[i].ID == "" {
			recs[i].ID = wire.NewID()
		}
	}
	body, err := wire.EncodeBatch(recs)
	if err != nil {
		return nil, fmt.Errorf("write batch: %w", err)
	}
	var out wire.BatchResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/audit/batch", http.Header{}, body, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("write batch: %w", err)
	}
	return &out, nil
}

// do sends the request (a POST with body, or a GET with none) until it gets
// want, a final error, or runs out of retries.
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body []byte, want int, out any) error {
	url := c.base + path
	bo := backoff.New(c.cfg.Backoff, c.cfg.MaxBackoff)
	reauthed := false
	for attempt := 1; ; attempt++ {
		status, answer, retryAfter, err := c.attempt(ctx, method, url, hdr, body)
		if err == nil && status == want {
			if err := json.Unmarshal(answer, out); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("after %d attempts: %w", attempt, context.Cause(ctx))
		}
		var apiErr *APIError
		if err == nil {
			apiErr = newAPIError(status, answer, retryAfter, attempt)
			if status == http.StatusUnauthorized && c.cfg.TokenFile != "" && !reauthed {
				// The token may have been rotated since we read it.
				reauthed = true
				c.tokens.Invalidate()
				attempt--
				continue
			}
			if !retryableStatus(status) {
				return apiErr
			}
			err = apiErr
		}
		if attempt > c.cfg.MaxRetries {
			if apiErr != nil {
				return apiErr
			}
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		// Backoff·2^(n-1) with jitter, at least the server's Retry-After, at
		// most MaxBackoff.
		wait := min(max(bo.Next(), retryAfter), c.cfg.MaxBackoff)
		if !backoff.Sleep(ctx, wait, nil) {
			return fmt.Errorf("after %d attempts: %w (last error: %v)", attempt, context.Cause(ctx), err)
		}
	}
}

// attempt sends one request. err is a transport error (retryable);
// otherwise status, answer and Retry-After describe the answer.
func (c *Client) attempt(ctx context.Context, method, url string, hdr http.Header, body []byte) (int, []byte, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.send(actx, method, url, hdr, body)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, answer, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// send sends one request with the caller's headers and token.
func (c *Client) send(ctx context.Context, method, url string, hdr http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	token, err := c.token()
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.http.Do(req)
}

func newAPIError(status int, answer []byte, retryAfter time.Duration, attempts int) *APIError {
	e := &APIError{StatusCode: status, RetryAfter: retryAfter, Attempts: attempts}
	if err := json.Unmarshal(answer, &e.Body); err != nil || e.Body.Error == "" {
		msg := string(answer)
		if len(msg) > 200 {
			msg = msg[:200]
		}
		e.Body = wire.ErrorBody{Error: codeForStatus(status), Message: strings.TrimSpace(msg)}
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// token is the bearer token: the file's current content, or the fixed one.
func (c *Client) token() (string, error) {
	if c.tokens == nil {
		return c.cfg.Token, nil
	}
	return c.tokens.Token()
}
