package central

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// The read API: the audit trail read back by the AI Analysis controller, an
// operator or a compliance export. Every read needs read:audit (the export,
// export:audit) and is charged, in rows, to the caller's read budget, which
// is separate from its write budget. Paths:
//
//	GET /api/v1/audit/{remediation,workflow}?filters…&since&until&limit&order&cursor
//	GET /api/v1/audit/{kind}/{auditID}[?serviceAccount=namespace/name]
//	GET /api/v1/remediations/{remediationRequestID}/timeline
//	GET /api/v1/audit/export?kind&since&until
const (
	pathExport           = "/api/v1/audit/export"
	prefixAudit          = "/api/v1/audit/"
	prefixRemediations   = "/api/v1/remediations/"
	suffixTimeline       = "/timeline"
	MaxTimelineEvents    = 1000
	DefaultQueryTimeout  = 10 * time.Second
	DefaultReadRate      = 5000 // rows per second per service account
	DefaultReadBurst     = 5000 // rows; at least MaxPageSize
	exportChargeRows     = 1000 // an export is charged, and throttled, every this many rows
	exportContentType    = "application/x-ndjson"
	exportFilenamePrefix = "audit-export-"
)

// ReadStore reads stored audits back; *storage.DB implements it.
type ReadStore interface {
	QueryAudits(ctx context.Context, q storage.AuditQuery) ([]wire.AuditEntry, error)
	Timeline(ctx context.Context, remediationRequestID string, limit int) ([]wire.AuditEntry, error)
	AuditsByID(ctx context.Context, kind wire.Kind, id string) ([]wire.AuditEntry, error)
	ExportAudits(ctx context.Context, q storage.ExportQuery, each func(*wire.AuditEntry, int64) error) error
}

// ReadConfig enables the read API (Config.Reads).
type ReadConfig struct {
	Store ReadStore
	// Limiter is the read budget: rows per second per service account,
	// charged for the rows each read returned. Required.
	Limiter *ratelimit.Limiter
	// ExportKey signs exports. Nil: GET /api/v1/audit/export answers 404.
	ExportKey *export.KeyFile
	// QueryTimeout bounds one query, page, record or timeline (not an
	// export, which runs as long as its client reads). Zero:
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Proofs, when set, ends each export's records with their ledger proof
	// (export format v2, ledger/export.go). Nil: format v1, no proof.
	Proofs *ProofConfig
}

// ProofConfig makes exports carry their ledger proof.
type ProofConfig struct {
	Store ProofStore
	// Sign signs, and keeps as the notary keeps every checkpoint, a
	// checkpoint of head: the proof's last line.
	Sign func(ctx context.Context, head storage.Head) (ledger.Checkpoint, error)
}

// ProofStore is the ledger's side of an export proof (storage.DB).
type ProofStore interface {
	LedgerProof(ctx context.Context, batches map[int64]struct{}, emit func(ledger.ProofLine) error) (storage.Head, error)
}

// Validate reports the first missing dependency.
func (c *ReadConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("central: ReadConfig.Store is required")
	case c.Limiter == nil:
		return errors.New("central: ReadConfig.Limiter is required")
	case c.QueryTimeout < 0:
		return errors.New("central: ReadConfig.QueryTimeout must not be negative")
	}
	return nil
}

var (
	// errQueryTimeout: a read outlived QueryTimeout. Pages under filters
	// that different writers fill in (status with cluster, say) can match
	// almost nothing and scan one value's every row: the deadline cancels
	// the statement on the server.
	errQueryTimeout   = errors.New("read query timed out")
	errReadsDisabled  = fmt.Errorf("the read API is not configured: %w", edge.NotFound())
	errExportDisabled = fmt.Errorf("export is not configured (--export-key-file): %w", edge.NotFound())
)

// readRoute serves the read paths that carry a value in the path; false
// when path is none of them.
func (s *Server) readRoute(ctx *fasthttp.RequestCtx, path string) (endpoint string, ok bool) {
	switch {
	case path == pathExport:
		s.get(ctx, func() error { return s.export(ctx) })
		return "export", true
	case strings.HasPrefix(path, prefixRemediations) && strings.HasSuffix(path, suffixTimeline):
		s.get(ctx, func() error { return s.timeline(ctx) })
		return "timeline", true
	case strings.HasPrefix(path, prefixAudit) && strings.Count(rawPath(ctx)[len(prefixAudit):], "/") == 1:
		s.get(ctx, func() error { return s.one(ctx) })
		return "record", true
	}
	return "", false
}

// rawPath is the request's path as sent, before any decoding.
func rawPath(ctx *fasthttp.RequestCtx) string {
	raw, _, _ := strings.Cut(string(ctx.URI().PathOriginal()), "?")
	return raw
}

// pathSegments splits the request's path as sent after prefix and
// unescapes each segment: an ID may hold a "/" sent as %2F.
func pathSegments(ctx *fasthttp.RequestCtx, prefix string) ([]string, error) {
	rest, ok := strings.CutPrefix(rawPath(ctx), prefix)
	if !ok {
		return nil, edge.NotFound()
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		v, err := url.PathUnescape(p)
		if err != nil || v == "" {
			return nil, edge.NotFound()
		}
		parts[i] = v
	}
	return parts, nil
}

// reader authenticates and authorizes a read, and checks that the caller
// is not over its read budget.
func (s *Server) reader(ctx *fasthttp.RequestCtx, act authz.Action) (auth.Identity, error) {
	if s.cfg.Reads == nil {
		return auth.Identity{}, errReadsDisabled
	}
	id, err := s.caller(ctx)
	if err != nil {
		return auth.Identity{}, err
	}
	if err := s.authorize(ctx, id, act); err != nil {
		return auth.Identity{}, err
	}
	return id, nil
}

// admit refuses a reader over its budget (429, with when to come back).
func (s *Server) admit(id auth.Identity) error {
	return s.admitTo(s.cfg.Reads.Limiter, id)
}

// admitTo refuses a caller over its budget in lim, a budget of rows (the
// read budget, which legal hold requests are charged to as well).
func (s *Server) admitTo(lim *ratelimit.Limiter, id auth.Identity) error {
	if ok, retryAfter := lim.Admit(s.cfg.Now(), id.Key()); !ok {
		s.metrics.rateLimited(id.Key())
		return &rateLimitedError{caller: id.Key(), retryAfter: retryAfter, rowsPerSecond: lim.Config().Rate}
	}
	return nil
}

// charge bills rows read to the caller's read budget.
func (s *Server) charge(id auth.Identity, rows int) time.Duration {
	s.metrics.rowsRead.Add(rows)
	return s.cfg.Reads.Limiter.Charge(s.cfg.Now(), id.Key(), rows)
}

func (s *Server) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Reads.QueryTimeout)
}

// query is GET /api/v1/audit/{remediation,workflow}: a page of audits.
func (s *Server) query(ctx *fasthttp.RequestCtx, kind wire.Kind) error {
	id, err := s.reader(ctx, authz.ReadAudit)
	if err != nil {
		return err
	}
	q, err := parseReadQuery(kind, ctx.QueryArgs())
	if err != nil {
		return err
	}
	if err := s.admit(id); err != nil {
		return err
	}
	qctx, cancel := s.queryContext(ctx)
	defer cancel()
	rows, err := s.cfg.Reads.Store.QueryAudits(qctx, q.storageQuery())
	if err != nil {
		if qctx.Err() != nil && ctx.Err() == nil {
			// It cost the database as much as a full page, whatever it found.
			s.charge(id, q.limit)
			err = fmt.Errorf("%w after %s: %w", errQueryTimeout, s.cfg.Reads.QueryTimeout, err)
		}
		return fmt.Errorf("query %s audits: %w", kind, err)
	}
	page := q.page(rows)
	s.charge(id, len(page.Records))
	return edge.WriteJSON(ctx, fasthttp.StatusOK, page)
}

// one is GET /api/v1/audit/{kind}/{auditID}: one stored record. An ID is
// unique per writer only: when several writers stored it, the caller must
// name the one it means (serviceAccount).
func (s *Server) one(ctx *fasthttp.RequestCtx) error {
	id, err := s.reader(ctx, authz.ReadAudit)
	if err != nil {
		return err
	}
	seg, err := pathSegments(ctx, prefixAudit)
	if err != nil {
		return err
	}
	kind, err := wire.ParseKind(seg[0])
	if err != nil {
		return badParam("kind", `kind must be "remediation" or "workflow"`)
	}
	params, err := queryParams(ctx.QueryArgs(), []string{"serviceAccount"})
	if err != nil {
		return err
	}
	if err := s.admit(id); err != nil {
		return err
	}
	qctx, cancel := s.queryContext(ctx)
	defer cancel()
	found, err := s.cfg.Reads.Store.AuditsByID(qctx, kind, seg[1])
	if err != nil {
		return fmt.Errorf("read %s audit: %w", kind, err)
	}
	s.charge(id, len(found))
	if sa, ok := params["serviceAccount"]; ok {
		kept := found[:0]
		for _, e := range found {
			if e.ServiceAccount == sa {
				kept = append(kept, e)
			}
		}
		found = kept
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("no such %s audit: %w", kind, edge.NotFound())
	case 1:
		return edge.WriteJSON(ctx, fasthttp.StatusOK, &found[0])
	}
	writers := make([]string, len(found))
	for i, e := range found {
		writers[i] = e.ServiceAccount
	}
	return &conflictError{message: fmt.Sprintf("%d writers stored a %s audit with this ID (%s): add serviceAccount=namespace/name",
		len(found), kind, strings.Join(writers, ", "))}
}

// conflictError is a request that names more than one record (409).
type conflictError struct{ message string }

func (e *conflictError) Error() string { return e.message }

// timeline is GET /api/v1/remediations/{remediationRequestID}/timeline.
func (s *Server) timeline(ctx *fasthttp.RequestCtx) error {
	id, err := s.reader(ctx, authz.ReadAudit)
	if err != nil {
		return err
	}
	seg, err := pathSegments(ctx, prefixRemediations)
	if err != nil || len(seg) != 2 || seg[1] != strings.TrimPrefix(suffixTimeline, "/") {
		return edge.NotFound()
	}
	if _, err := queryParams(ctx.QueryArgs()); err != nil {
		return err
	}
	if err := s.admit(id); err != nil {
		return err
	}
	qctx, cancel := s.queryContext(ctx)
	defer cancel()
	events, err := s.cfg.Reads.Store.Timeline(qctx, seg[0], MaxTimelineEvents+1)
	if err != nil {
		return fmt.Errorf("read timeline: %w", err)
	}
	if len(events) == 0 {
		return fmt.Errorf("no audits of this remediation: %w", edge.NotFound())
	}
	tl := wire.Timeline{RemediationRequestID: seg[0], Events: events}
	if len(events) > MaxTimelineEvents {
		tl.Events, tl.Truncated = events[:MaxTimelineEvents], true
	}
	s.charge(id, len(tl.Events))
	return edge.WriteJSON(ctx, fasthttp.StatusOK, tl)
}

// export is GET /api/v1/audit/export: every audit of a time range as NDJSON
// with a signed trailer (package export), streamed from one database
// snapshot in constant memory at any size. The status is sent before the
// first row: a failure later (database, shutdown) ends the stream without a
// trailer, which a verifier reports as truncated, after a last line saying
// why. A client that goes away stops the query.
func (s *Server) export(ctx *fasthttp.RequestCtx) error {
	id, err := s.reader(ctx, authz.ExportAudit)
	if err != nil {
		return err
	}
	keys := s.cfg.Reads.ExportKey
	if keys == nil {
		return errExportDisabled
	}
	params, err := queryParams(ctx.QueryArgs(), []string{"kind"}, rangeParams)
	if err != nil {
		return err
	}
	q := storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation, wire.KindWorkflow}}
	if v, ok := params["kind"]; ok {
		kind, err := wire.ParseKind(v)
		if err != nil {
			return badParam("kind", `kind must be "remediation" or "workflow"; leave it out for both`)
		}
		q.Kinds = []wire.Kind{kind}
	}
	if q.Since, q.Until, err = parseRange(params); err != nil {
		return err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if q.Until.IsZero() {
		if !q.Since.IsZero() && !q.Since.Before(now) {
			return badParam("since", "since must be in the past when until is left out (until defaults to now)")
		}
		q.Until = now
	}
	key, err := keys.Key()
	if err != nil {
		return fmt.Errorf("export signing key: %w", err)
	}
	if err := s.admit(id); err != nil {
		return err
	}
	trailer := export.Trailer{Kinds: q.Kinds, Until: q.Until, ExportedAt: now, ExportedBy: id.Key()}
	if !q.Since.IsZero() {
		since := q.Since
		trailer.Since = &since
	}

	gzipped := acceptsGzip(ctx)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(exportContentType)
	ctx.Response.Header.Set("Content-Disposition",
		`attachment; filename="`+exportFilenamePrefix+now.Format("20060102T150405Z")+`.ndjson"`)
	if gzipped {
		ctx.Response.Header.Set(fasthttp.HeaderContentEncoding, "gzip")
	}
	ctx.Response.Header.Set(fasthttp.HeaderVary, "Accept-Encoding")
	shutdown := ctx.Done()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		ectx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-shutdown:
				cancel()
			case <-stop:
			}
		}()
		s.streamExport(ectx, ctx, w, gzipped, id, q, trailer, key)
	})
	return nil
}

// streamExport writes the export to w. It runs after the handler returned,
// while fasthttp copies what it writes to the connection: each flush gives
// the connection another WriteTimeout, so a client that keeps reading gets
// an export of any length and one that stops is cut off.
func (s *Server) streamExport(ctx context.Context, rc *fasthttp.RequestCtx, w *bufio.Writer, gzipped bool,
	id auth.Identity, q storage.ExportQuery, trailer export.Trailer, key ed25519.PrivateKey) {
	start := time.Now()
	var out io.Writer = w
	var zw *gzip.Writer
	if gzipped {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level never fails
		out = zw
	}
	ew := export.NewWriter(out)
	var rows, sinceCharge int
	var flushed time.Time
	flush := func() error {
		if zw != nil {
			if err := zw.Flush(); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		flushed = time.Now()
		return rc.SetWriteDeadline(flushed.Add(s.cfg.WriteTimeout))
	}
	proofs := s.cfg.Reads.Proofs
	batches := map[int64]struct{}{} // the ledger batches of the rows exported, for the proof
	err := flush()                  // the deadline runs from here, not from the handler's return
	if err == nil {
		err = s.cfg.Reads.Store.ExportAudits(ctx, q, func(e *wire.AuditEntry, batch int64) error {
			if err := ew.Record(e); err != nil {
				return err
			}
			if proofs != nil && batch != 0 {
				batches[batch] = struct{}{}
			}
			rows++
			if sinceCharge++; sinceCharge == exportChargeRows {
				sinceCharge = 0
				if wait := s.charge(id, exportChargeRows); wait > 0 {
					if err := flush(); err != nil {
						return err
					}
					if err := sleepCtx(ctx, wait); err != nil {
						return err
					}
				}
				return flush()
			}
			if time.Since(flushed) > time.Second { // sparse rows: keep the client fed and the deadline ahead
				return flush()
			}
			return nil
		})
	}
	s.charge(id, sinceCharge)
	if err == nil && proofs != nil && len(batches) > 0 {
		err = writeProof(ctx, ew, proofs, batches)
	}
	if err == nil {
		err = ew.Finish(trailer, key)
	}
	if err != nil {
		// The status is long gone: say why on a last line that is no
		// record and no trailer, so the file fails verification as
		// truncated and a reader sees the reason.
		correlationID := edge.CorrelationID()
		s.log.Error().Err(err).Str("correlation_id", correlationID).Str("caller", id.Key()).
			Int("records", rows).Msg("export failed")
		body := wire.ServiceUnavailable("export failed after " + strconv.Itoa(rows) + " records; retry it")
		body.CorrelationID = correlationID
		_, _ = out.Write(append(body.Marshal(), '\n'))
	}
	if zw != nil {
		_ = zw.Close()
	}
	_ = w.Flush()
	s.metrics.exportDuration.UpdateDuration(start)
}

// writeProof writes the ledger proof of the exported rows' batches: the
// chain to the head, and a checkpoint of the head signed now.
func writeProof(ctx context.Context, ew *export.Writer, p *ProofConfig, batches map[int64]struct{}) error {
	head, err := p.Store.LedgerProof(ctx, batches, func(line ledger.ProofLine) error { return ew.Proof(line) })
	if err != nil {
		return fmt.Errorf("ledger proof: %w", err)
	}
	c, err := p.Sign(ctx, head)
	if err != nil {
		return fmt.Errorf("ledger proof: checkpoint: %w", err)
	}
	return ew.Proof(ledger.ProofLine{Checkpoint: &c})
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acceptsGzip reports whether the client takes a gzip answer.
func acceptsGzip(ctx *fasthttp.RequestCtx) bool {
	for part := range strings.SplitSeq(string(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding)), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}
