package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// Query selects stored audits of one kind (GET /api/v1/audit/{kind}); the
// caller needs read:audit.
type Query struct {
	Kind wire.Kind
	// Filters match fields exactly, by their API names: for remediation
	// audits remediationRequestID, alertName, cluster, namespace,
	// actionType, status; for workflow audits workflowID, stepName,
	// stepStatus; for both serviceAccount (the writer, "namespace/name").
	Filters map[string]string
	// Since and Until bound the records' event time, Since ≤ t < Until;
	// zero: unbounded.
	Since, Until time.Time
	// Ascending returns the oldest first; the default is newest first.
	Ascending bool
	// PageSize is the number of records per request, 1..1000. Zero: the
	// server's default, 100.
	PageSize int
}

func (q Query) values() url.Values {
	v := url.Values{}
	for k, f := range q.Filters {
		v.Set(k, f)
	}
	setRange(v, q.Since, q.Until)
	if q.Ascending {
		v.Set("order", "asc")
	}
	if q.PageSize != 0 {
		v.Set("limit", strconv.Itoa(q.PageSize))
	}
	return v
}

func setRange(v url.Values, since, until time.Time) {
	if !since.IsZero() {
		v.Set("since", since.Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		v.Set("until", until.Format(time.RFC3339Nano))
	}
}

// AuditPages yields the query's pages in order, fetching each when the
// previous one has been consumed; it stops after the last page or the
// first error (yielded with a nil page). Pages follow the server's cursor,
// so rows written meanwhile never make a page skip or repeat a record.
func (c *Client) AuditPages(ctx context.Context, q Query) iter.Seq2[*wire.AuditPage, error] {
	return func(yield func(*wire.AuditPage, error) bool) {
		if q.Kind != wire.KindRemediation && q.Kind != wire.KindWorkflow {
			yield(nil, fmt.Errorf("query audits: kind must be %q or %q", wire.KindRemediation, wire.KindWorkflow))
			return
		}
		params := q.values()
		for {
			var page wire.AuditPage
			path := "/api/v1/audit/" + string(q.Kind) + "?" + params.Encode()
			if err := c.do(ctx, http.MethodGet, path, http.Header{}, nil, http.StatusOK, &page); err != nil {
				yield(nil, fmt.Errorf("query %s audits: %w", q.Kind, err))
				return
			}
			if !yield(&page, nil) || page.NextCursor == "" {
				return
			}
			params.Set("cursor", page.NextCursor)
		}
	}
}

// Audits yields every record the query matches, across pages; see
// AuditPages. Each yielded entry is the caller's to keep.
func (c *Client) Audits(ctx context.Context, q Query) iter.Seq2[*wire.AuditEntry, error] {
	return func(yield func(*wire.AuditEntry, error) bool) {
		for page, err := range c.AuditPages(ctx, q) {
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Records {
				if !yield(&page.Records[i], nil) {
					return
				}
			}
		}
	}
}

// Audit reads one record (GET /api/v1/audit/{kind}/{id}). IDs are unique
// per writer: serviceAccount ("namespace/name") names the writer, and may be
// "" unless several writers stored the ID (the server then answers 409).
func (c *Client) Audit(ctx context.Context, kind wire.Kind, id, serviceAccount string) (*wire.AuditEntry, error) {
	path := "/api/v1/audit/" + url.PathEscape(string(kind)) + "/" + url.PathEscape(id)
	if serviceAccount != "" {
		path += "?" + url.Values{"serviceAccount": {serviceAccount}}.Encode()
	}
	var e wire.AuditEntry
	if err := c.do(ctx, http.MethodGet, path, http.Header{}, nil, http.StatusOK, &e); err != nil {
		return nil, fmt.Errorf("read %s audit: %w", kind, err)
	}
	return &e, nil
}

// Timeline reads every audit of one remediation, oldest first, each with
// its writer (GET /api/v1/remediations/{id}/timeline).
func (c *Client) Timeline(ctx context.Context, remediationRequestID string) (*wire.Timeline, error) {
	var tl wire.Timeline
	path := "/api/v1/remediations/" + url.PathEscape(remediationRequestID) + "/timeline"
	if err := c.do(ctx, http.MethodGet, path, http.Header{}, nil, http.StatusOK, &tl); err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	return &tl, nil
}

// ExportQuery selects what Export streams; the caller needs export:audit.
type ExportQuery struct {
	// Kind is one kind, or "" for both.
	Kind wire.Kind
	// Since and Until bound the event time, Since ≤ t < Until. Zero Since:
	// from the first record; zero Until: the server's now.
	Since, Until time.Time
}

// Export streams a signed export (package export's format) into w, as the
// server sends it (decompressed), in constant memory at any size. It makes
// one attempt: a failure part way leaves w holding a file without its
// signed trailer, which export.Verify reports as truncated. Verify the file
// with export.Verify, or use ExportVerified to do both in one pass.
func (c *Client) Export(ctx context.Context, q ExportQuery, w io.Writer) error {
	v := url.Values{}
	if q.Kind != "" {
		v.Set("kind", string(q.Kind))
	}
	setRange(v, q.Since, q.Until)
	// No per-attempt Timeout: an export runs as long as it has rows. The
	// transport asks for gzip and decompresses on its own.
	resp, err := c.send(ctx, http.MethodGet, c.base+"/api/v1/audit/export?"+v.Encode(),
		http.Header{"Accept": {"application/x-ndjson"}}, nil)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return fmt.Errorf("export: %w", newAPIError(resp.StatusCode, answer,
			parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), 1))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ExportVerified is Export that also checks the stream against pub as it
// passes (export.Verify), and returns its trailer. w receives every byte
// either way; on a verification error the file must not be trusted.
func (c *Client) ExportVerified(ctx context.Context, q ExportQuery, w io.Writer, pub ed25519.PublicKey) (*export.Trailer, error) {
	pr, pw := io.Pipe()
	type result struct {
		t   *export.Trailer
		err error
	}
	done := make(chan result, 1)
	go func() {
		t, err := export.Verify(pr, pub)
		_, _ = io.Copy(io.Discard, pr) // let Export finish whatever Verify made of it
		done <- result{t, err}
	}()
	err := c.Export(ctx, q, io.MultiWriter(w, pw))
	pw.CloseWithError(err)
	res := <-done
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, fmt.Errorf("export: verify: %w", res.err)
	}
	return res.t, nil
}
