package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

// Legal holds (/api/v1/legal-holds): the caller needs hold:audit. A hold
// keeps every audit of one remediation or workflow from retention and
// deletion until it is released.

// PlaceHold places a hold on the audits of req's remediation
// (RemediationRequestID) or workflow (WorkflowID), for req.Reason, and
// returns it as stored: who placed it (the caller) and when. It is sent
// with an Idempotency-Key, WithIdempotencyKey's or a fresh one, so that the
// client's own retries place one hold.
func (c *Client) PlaceHold(ctx context.Context, req wire.PlaceHoldRequest) (*wire.LegalHold, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("place legal hold: encode: %w", err)
	}
	var h wire.LegalHold
	hdr := http.Header{"Idempotency-Key": {idempotencyKey(ctx)}}
	if err := c.do(ctx, http.MethodPost, "/api/v1/legal-holds", hdr, body, http.StatusCreated, &h); err != nil {
		return nil, fmt.Errorf("place legal hold: %w", err)
	}
	return &h, nil
}

// Hold reads one hold.
func (c *Client) Hold(ctx context.Context, id string) (*wire.LegalHold, error) {
	var h wire.LegalHold
	if err := c.do(ctx, http.MethodGet, "/api/v1/legal-holds/"+url.PathEscape(id), http.Header{}, nil, http.StatusOK, &h); err != nil {
		return nil, fmt.Errorf("read legal hold: %w", err)
	}
	return &h, nil
}

// ReleaseHold releases the hold id for reason and returns it, released by
// the caller. A hold is released once: a second release is an *APIError
// with status 409. A 409 after a retry (APIError.Attempts > 1) may be this
// call's own earlier attempt, whose answer was lost: Hold tells who
// released it.
func (c *Client) ReleaseHold(ctx context.Context, id, reason string) (*wire.LegalHold, error) {
	var h wire.LegalHold
	path := "/api/v1/legal-holds/" + url.PathEscape(id) + "?" + url.Values{"reason": {reason}}.Encode()
	if err := c.do(ctx, http.MethodDelete, path, http.Header{}, nil, http.StatusOK, &h); err != nil {
		return nil, fmt.Errorf("release legal hold: %w", err)
	}
	return &h, nil
}

// HoldQuery selects holds (GET /api/v1/legal-holds).
type HoldQuery struct {
	// Active, when set, keeps the holds in force (true) or the released
	// ones (false); nil: both.
	Active *bool
	// PageSize is the number of holds per request, 1..1000. Zero: the
	// server's default, 100.
	PageSize int
}

// HoldPages yields pages of holds in the order they were placed, fetching
// each when the previous one has been consumed; it stops after the last
// page or the first error (yielded with a nil page).
func (c *Client) HoldPages(ctx context.Context, q HoldQuery) iter.Seq2[*wire.LegalHoldList, error] {
	return func(yield func(*wire.LegalHoldList, error) bool) {
		params := url.Values{}
		if q.Active != nil {
			params.Set("active", strconv.FormatBool(*q.Active))
		}
		if q.PageSize != 0 {
			params.Set("limit", strconv.Itoa(q.PageSize))
		}
		for {
			var page wire.LegalHoldList
			if err := c.do(ctx, http.MethodGet, "/api/v1/legal-holds?"+params.Encode(), http.Header{}, nil, http.StatusOK, &page); err != nil {
				yield(nil, fmt.Errorf("list legal holds: %w", err))
				return
			}
			if !yield(&page, nil) || page.NextCursor == "" {
				return
			}
			params.Set("cursor", page.NextCursor)
		}
	}
}

// Holds yields every hold the query selects, across pages; see HoldPages.
// Each yielded hold is the caller's to keep.
func (c *Client) Holds(ctx context.Context, q HoldQuery) iter.Seq2[*wire.LegalHold, error] {
	return func(yield func(*wire.LegalHold, error) bool) {
		for page, err := range c.HoldPages(ctx, q) {
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Holds {
				if !yield(&page.Holds[i], nil) {
					return
				}
			}
		}
	}
}
