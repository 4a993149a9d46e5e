package central

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

const (
	pathRemediation = "/api/v1/audit/remediation"
	pathWorkflow    = "/api/v1/audit/workflow"
	pathBatch       = "/api/v1/audit/batch"
	pathAccess      = "/api/v1/access"
)

var errMissingToken = errors.New("missing or malformed bearer token")

// Handler is the API router: audits, batch, access, search, reads, legal
// holds, and the health endpoints. Every handler authenticates and authorizes the caller from the
// headers before it reads the body (the server streams request bodies), so
// a caller that may not write costs no body read, decompression or decoding.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		path := string(ctx.Path())
		endpoint := "other"
		switch path {
		case pathRemediation:
			endpoint = s.writeOrQuery(ctx, wire.KindRemediation)
		case pathWorkflow:
			endpoint = s.writeOrQuery(ctx, wire.KindWorkflow)
		case pathBatch:
			endpoint = "batch"
			s.post(ctx, func() error { return s.writeBatch(ctx) })
		case pathSimilar:
			endpoint = "similar"
			s.post(ctx, func() error { return s.similar(ctx) })
		case pathAccess:
			endpoint = "access"
			s.get(ctx, func() error { return s.access(ctx) })
		case pathHolds:
			endpoint = s.holdsRoot(ctx)
		case pathLedgerVerify:
			endpoint = "ledger_verify"
			s.get(ctx, func() error { return s.verifyLedger(ctx) })
		case pathOpenAPI:
			endpoint = "openapi"
			s.get(ctx, func() error { return s.openAPI(ctx) })
		case "/healthz":
			endpoint = "healthz"
			healthy(ctx)
		case "/readyz":
			endpoint = "readyz"
			s.ready(ctx)
		default:
			if e, ok := s.readRoute(ctx, path); ok {
				endpoint = e
				break
			}
			if e, ok := s.holdRoute(ctx, path); ok {
				endpoint = e
				break
			}
			s.fail(ctx, edge.NotFound())
		}
		s.metrics.observeRequest(endpoint, ctx.Response.StatusCode(), time.Since(start))
	}
}

// writeOrQuery serves /api/v1/audit/{kind}: POST writes a record, GET
// queries stored ones. It returns the endpoint's metrics label.
func (s *Server) writeOrQuery(ctx *fasthttp.RequestCtx, kind wire.Kind) string {
	switch string(ctx.Method()) {
	case fasthttp.MethodPost:
		if err := s.writeOne(ctx, kind); err != nil {
			s.fail(ctx, err)
		}
		return string(kind)
	case fasthttp.MethodGet:
		if err := s.query(ctx, kind); err != nil {
			s.fail(ctx, err)
		}
		return string(kind) + "_query"
	}
	s.fail(ctx, edge.MethodNotAllowed(ctx, "GET, POST"))
	return string(kind)
}

func (s *Server) post(ctx *fasthttp.RequestCtx, handle func() error) {
	s.method(ctx, fasthttp.MethodPost, handle)
}

func (s *Server) get(ctx *fasthttp.RequestCtx, handle func() error) {
	s.method(ctx, fasthttp.MethodGet, handle)
}

func (s *Server) method(ctx *fasthttp.RequestCtx, method string, handle func() error) {
	if string(ctx.Method()) != method {
		s.fail(ctx, edge.MethodNotAllowed(ctx, method))
		return
	}
	if err := handle(); err != nil {
		s.fail(ctx, err)
	}
}

// caller authenticates the request's bearer token, on behalf of the TCP peer.
func (s *Server) caller(ctx *fasthttp.RequestCtx) (auth.Identity, error) {
	token, ok := bearerToken(string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)))
	if !ok {
		return auth.Identity{}, errMissingToken
	}
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return s.cfg.Authenticator.Authenticate(ctx, token, peer.Unmap())
}

func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// readBody checks the content type and returns the decompressed body, at
// most limit bytes. Call it only once the caller is authorized: the body is
// read from the connection here, not before the handler runs.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	if err := checkContentType(string(ctx.Request.Header.ContentType())); err != nil {
		return nil, err
	}
	raw, err := requestBody(ctx, limit)
	if err != nil {
		return nil, err
	}
	return s.body.decode(raw, string(ctx.Request.Header.ContentEncoding()), limit)
}

// writeOne is POST /api/v1/audit/{remediation,workflow}: one record, 201
// once it is committed.
func (s *Server) writeOne(ctx *fasthttp.RequestCtx, kind wire.Kind) error {
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, id, authz.ActionForKind(kind)); err != nil {
		return err
	}
	key, err := idempotencyKey(ctx)
	if err != nil {
		return err
	}
	body, err := s.readBody(ctx, wire.MaxRecordBytes)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	rec, err := wire.DecodeAudit(kind, body, now)
	if err != nil {
		s.metrics.records(kind, "rejected", 1)
		return err
	}
	rec.ReceivedAt = now
	if err := s.checkHorizon(&rec, "", now); err != nil {
		s.metrics.records(kind, "rejected", 1)
		return err
	}
	if key != "" {
		rec.ID = wire.IDForKey(id.Key(), kind, key)
	} else {
		rec.ID = wire.NewID()
	}
	if err := s.allow(now, id, 1); err != nil {
		return err
	}
	start := time.Now()
	status, err := s.writes.write(id.Key(), rec)
	s.metrics.writeDuration.UpdateDuration(start)
	if err != nil {
		return err
	}
	s.committed()
	s.metrics.records(kind, string(status), 1)
	// A duplicate is this writer's retried Idempotency-Key: the record is
	// stored as its own, under this ID, which is all the client asked for.
	// (Another writer's record with the same ID is not a duplicate: IDs are
	// unique per writer.)
	return edge.WriteJSON(ctx, fasthttp.StatusCreated, wire.WriteResponse{AuditID: rec.ID, Status: "persisted"})
}

// idempotencyKey is the request's Idempotency-Key, "" when it sent none. A
// header sent empty is refused, as the agent refuses it: a client that sets
// it means to retry safely and must not silently get a new ID each time.
func idempotencyKey(ctx *fasthttp.RequestCtx) (string, error) {
	key := ctx.Request.Header.Peek("Idempotency-Key")
	if key == nil {
		return "", nil
	}
	if err := wire.ValidateIdempotencyKey(string(key)); err != nil {
		return "", err
	}
	return string(key), nil
}

// writeBatch is POST /api/v1/audit/batch: the agent's path. A caller that
// may write no kind is refused before its body is read. Items of a kind the
// caller may not write, and invalid items, are rejected one by one (so one
// such record never holds up the rest); the others are written in one
// transaction; the answer gives each item's outcome in request order.
func (s *Server) writeBatch(ctx *fasthttp.RequestCtx) error {
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	kinds, err := authz.MayWrite(ctx, s.cfg.Authorizer, id)
	if err != nil {
		return err
	}
	if len(kinds) == 0 {
		return forbidden(id, "")
	}
	body, err := s.readBody(ctx, wire.MaxBatchBytes)
	if err != nil {
		return err
	}
	batch, err := wire.DecodeBatch(body)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	resp := wire.BatchResponse{Results: make([]wire.ItemResult, len(batch.Records))}
	valid := make([]wire.Record, 0, len(batch.Records))
	index := make([]int, 0, len(batch.Records)) // valid[i] answers Results[index[i]]
	for i, item := range batch.Records {
		rec, body := s.checkItem(id, kinds, item, i, now)
		if body != nil {
			resp.Results[i] = wire.ItemResult{ID: item.ID, Status: wire.StatusRejected, Error: body}
			resp.Rejected++
			s.metrics.records(item.Kind, "rejected", 1)
			continue
		}
		valid = append(valid, rec)
		index = append(index, i)
	}
	if len(valid) > 0 {
		if err := s.allow(now, id, len(valid)); err != nil {
			return err
		}
		statuses, err := s.store(ctx, id, valid)
		if err != nil {
			return err
		}
		for i, st := range statuses {
			resp.Results[index[i]] = wire.ItemResult{ID: valid[i].ID, Status: st}
			if st == wire.StatusDuplicate {
				resp.Duplicates++
			} else {
				resp.Persisted++
			}
			s.metrics.records(valid[i].Kind, string(st), 1)
		}
	}
	s.metrics.batchSize.Update(float64(len(batch.Records)))
	return edge.WriteJSON(ctx, fasthttp.StatusOK, resp)
}

// checkItem authorizes and validates the i-th batch item and fills in what
// the sender may leave out (ID, receivedAt). A refused item comes back as
// its error body: authorization first (the kind, against the kinds the
// caller may write), then validation.
func (s *Server) checkItem(id auth.Identity, kinds []wire.Kind, item wire.BatchItem, i int, now time.Time) (wire.Record, *wire.ErrorBody) {
	if kind, err := wire.ParseKind(string(item.Kind)); err == nil && !slices.Contains(kinds, kind) {
		b := wire.Forbidden(id.Key() + " may not write " + string(kind) + " audits")
		b.Field = "records[" + strconv.Itoa(i) + "].kind"
		return wire.Record{}, b
	}
	rec, err := item.Decode(now)
	if err != nil {
		var ve *wire.ValidationError
		if errors.As(err, &ve) {
			return wire.Record{}, ve.Body()
		}
		return wire.Record{}, wire.ValidationFailed("", err.Error())
	}
	if rec.ID == "" {
		rec.ID = wire.NewID()
	}
	switch {
	case rec.ReceivedAt.IsZero():
		rec.ReceivedAt = now
	case rec.ReceivedAt.Before(now.Add(-s.cfg.MaxReceivedAge)):
		return wire.Record{}, wire.ValidationFailed("records["+strconv.Itoa(i)+"].receivedAt",
			"ReceivedAt must be within the last "+days(s.cfg.MaxReceivedAge)+" (the central's --max-received-age)")
	}
	if ve := s.checkHorizon(&rec, "records["+strconv.Itoa(i)+"].", now); ve != nil {
		return wire.Record{}, ve.Body()
	}
	return rec, nil
}

// checkHorizon refuses a record whose event time is older than its kind's
// retention keeps (Config.Horizon). prefix names the batch item in the
// error's field.
func (s *Server) checkHorizon(rec *wire.Record, prefix string, now time.Time) *wire.ValidationError {
	if s.cfg.Horizon == nil {
		return nil
	}
	horizon := s.cfg.Horizon(rec.Kind, now)
	if horizon.IsZero() || !storage.OccurredAt(rec).Before(horizon) {
		return nil
	}
	field := "createdAt"
	switch {
	case rec.Kind == wire.KindWorkflow && rec.Workflow.ExecutedAt != nil:
		field = "executedAt"
	case rec.Kind == wire.KindRemediation && rec.Remediation.CreatedAt != nil:
	default:
		field = "receivedAt"
	}
	return &wire.ValidationError{Field: prefix + field, Message: "the record is older than the retention of " +
		string(rec.Kind) + " audits (" + days(now.Sub(horizon)) + "): it would be deleted, so it is not stored"}
}

// days formats d in whole days when it is some, else as a duration.
func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	return d.String()
}

// access is GET /api/v1/access: who the caller is and what it may do, so
// that an agent can refuse at once what the central would refuse later.
func (s *Server) access(ctx *fasthttp.RequestCtx) error {
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	granted, err := authz.Granted(ctx, s.cfg.Authorizer, id)
	if err != nil {
		return err
	}
	resp := wire.AccessResponse{Identity: id.Key(), Actions: make([]string, len(granted))}
	for i, a := range granted {
		resp.Actions[i] = string(a)
	}
	return edge.WriteJSON(ctx, fasthttp.StatusOK, resp)
}

// store writes records under the StoreTimeout. A client that hangs up does
// not abort a write in flight: the transaction either commits or not, and a
// retry with the same IDs is harmless either way.
func (s *Server) store(ctx context.Context, id auth.Identity, recs []wire.Record) ([]wire.ItemStatus, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	start := time.Now()
	statuses, err := s.cfg.Store.WriteBatch(wctx, id.Key(), recs)
	s.metrics.writeDuration.UpdateDuration(start)
	if err != nil {
		return nil, fmt.Errorf("write %d records: %w", len(recs), err)
	}
	s.committed()
	return statuses, nil
}

// committed tells the embedding pipeline that new records wait for it.
func (s *Server) committed() {
	if s.cfg.Committed != nil {
		s.cfg.Committed()
	}
}

// healthy answers a liveness probe: the process serves.
func healthy(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString("ok\n")
}

func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(pctx); err != nil {
		s.log.Warn().Err(err).Msg("readiness: database unreachable")
		edge.WriteError(ctx, wire.ServiceUnavailable("PostgreSQL connection failed"), 0)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString("ok\n")
}
