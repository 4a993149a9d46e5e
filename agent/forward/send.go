package forward

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/wire"
)

// Outcome classes (also the "class" label of agent_forward_errors_total).
const (
	classOK           = "ok"
	classNetwork      = "network"
	classServer       = "server_error"
	classUnavailable  = "unavailable"
	classRateLimited  = "rate_limited"
	classUnauthorized = "unauthorized"
	classForbidden    = "forbidden"
	classTooLarge     = "too_large"
	classBadRequest   = "bad_request"
	classBadResponse  = "bad_response"
	classUnexpected   = "unexpected_status"
	classToken        = "token"
)

type outcomeKind int

const (
	kindRetry outcomeKind = iota // back off, resend
	kindWait                     // wait Retry-After (or back off), resend
	kindSplit                    // split in halves
	kindDone                     // results are in
)

type outcome struct {
	kind    outcomeKind
	class   string
	wait    time.Duration
	results []wire.ItemResult
	reason  string // kindSplit: dead-letter reason if a single record
	err     error
}

// maxResponseBytes bounds what is read of an answer.
const maxResponseBytes = 8 << 20

// send posts one compressed batch and classifies the answer.
func (f *Forwarder) send(ctx context.Context, body []byte, entries []queue.Entry, forceToken bool) outcome {
	var tok string
	if f.token != nil { // no token file: no Authorization
		if forceToken {
			f.token.Invalidate()
		}
		var err error
		if tok, err = f.token.Token(); err != nil {
			return outcome{kind: kindRetry, class: classToken, err: err}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return outcome{kind: kindRetry, class: classNetwork, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "zstd")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	start := time.Now()
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return outcome{kind: kindRetry, class: classNetwork, err: err}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	f.mRequest.UpdateDuration(start)
	if err != nil {
		return outcome{kind: kindRetry, class: classNetwork, err: fmt.Errorf("read answer: %w", err)}
	}
	status := resp.StatusCode
	statusErr := fmt.Errorf("central answered %d: %s", status, errorSummary(answer))
	switch {
	case status == http.StatusOK:
		results, err := checkResults(answer, entries)
		if err != nil {
			return outcome{kind: kindRetry, class: classBadResponse, err: err}
		}
		return outcome{kind: kindDone, class: classOK, results: results}
	case status == http.StatusTooManyRequests:
		return outcome{kind: kindWait, class: classRateLimited, wait: retryAfter(resp.Header, f.cfg.Now()), err: statusErr}
	case status == http.StatusServiceUnavailable:
		return outcome{kind: kindWait, class: classUnavailable, wait: retryAfter(resp.Header, f.cfg.Now()), err: statusErr}
	case status == http.StatusUnauthorized:
		return outcome{kind: kindRetry, class: classUnauthorized, err: statusErr}
	case status == http.StatusForbidden:
		return outcome{kind: kindRetry, class: classForbidden, err: statusErr}
	case status == http.StatusRequestEntityTooLarge:
		return outcome{kind: kindSplit, class: classTooLarge, reason: "payload_too_large: " + errorMessage(answer), err: statusErr}
	case status == http.StatusBadRequest:
		return outcome{kind: kindSplit, class: classBadRequest, reason: "bad_request: " + errorMessage(answer), err: statusErr}
	case status >= 500:
		return outcome{kind: kindRetry, class: classServer, err: statusErr}
	default:
		// 404, 415, …: a misconfiguration an operator fixes; never a reason
		// to drop records.
		return outcome{kind: kindRetry, class: classUnexpected, err: statusErr}
	}
}

// checkResults decodes a 200 answer and checks it matches the batch.
func checkResults(answer []byte, entries []queue.Entry) ([]wire.ItemResult, error) {
	var resp wire.BatchResponse
	if err := json.Unmarshal(answer, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadResponse, err)
	}
	if len(resp.Results) != len(entries) {
		return nil, fmt.Errorf("%w: %d results for %d records", errBadResponse, len(resp.Results), len(entries))
	}
	for i, r := range resp.Results {
		if r.ID != entries[i].ID {
			return nil, fmt.Errorf("%w: result %d is for %q, want %q", errBadResponse, i, r.ID, entries[i].ID)
		}
		switch r.Status {
		case wire.StatusPersisted, wire.StatusDuplicate, wire.StatusRejected:
		default:
			return nil, fmt.Errorf("%w: result %d has status %q", errBadResponse, i, r.Status)
		}
	}
	return resp.Results, nil
}

// errorMessage is the message of a JSON error body, or a prefix of the answer.
func errorMessage(answer []byte) string {
	var b wire.ErrorBody
	if json.Unmarshal(answer, &b) == nil && b.Error != "" {
		if b.Field != "" {
			return b.Error + ": " + b.Message + " (field " + b.Field + ")"
		}
		return b.Error + ": " + b.Message
	}
	if len(answer) > 200 {
		answer = answer[:200]
	}
	return strconv.Quote(string(answer))
}

// errorSummary is what the log says of an answer: the error code, field and
// correlation ID, never the message, which may quote a record ("… (got
// 1e999)"); the message goes to the dead letter's reason instead.
func errorSummary(answer []byte) string {
	var b wire.ErrorBody
	if json.Unmarshal(answer, &b) != nil || b.Error == "" {
		return "an answer of " + strconv.Itoa(len(answer)) + " bytes that is not a JSON error"
	}
	s := b.Error
	if b.Field != "" {
		s += " (field " + b.Field + ")"
	}
	if b.CorrelationID != "" {
		s += " (correlation_id " + b.CorrelationID + ")"
	}
	return s
}

// retryAfter parses Retry-After (seconds or an HTTP date); 0 when absent.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
