package central

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/wire"
)

const (
	pathRemediation = "/api/v1/audit/remediation"
	pathWorkflow    = "/api/v1/audit/workflow"
	pathBatch       = "/api/v1/audit/batch"
)

var errMissingToken = errors.New("missing or malformed bearer token")

// Handler is the API router: audits, batch, and the health endpoints.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		path := string(ctx.Path())
		endpoint := "other"
		switch path {
		case pathRemediation:
			endpoint = "remediation"
			s.post(ctx, func() error { return s.writeOne(ctx, wire.KindRemediation) })
		case pathWorkflow:
			endpoint = "workflow"
			s.post(ctx, func() error { return s.writeOne(ctx, wire.KindWorkflow) })
		case pathBatch:
			endpoint = "batch"
			s.post(ctx, func() error { return s.writeBatch(ctx) })
		case pathSimilar:
			endpoint = "similar"
			s.post(ctx, func() error { return s.similar(ctx) })
		case "/healthz":
			endpoint = "healthz"
			ctx.SetStatusCode(fasthttp.StatusOK)
			ctx.SetBodyString("ok\n")
		case "/readyz":
			endpoint = "readyz"
			s.ready(ctx)
		default:
			s.fail(ctx, errNotFound)
		}
		s.metrics.observeRequest(endpoint, ctx.Response.StatusCode(), time.Since(start))
	}
}

var (
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
)

func (s *Server) post(ctx *fasthttp.RequestCtx, handle func() error) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		s.fail(ctx, errMethodNotAllowed)
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

// readBody checks the content type and returns the decompressed body.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	if err := checkContentType(string(ctx.Request.Header.ContentType())); err != nil {
		return nil, err
	}
	return s.body.decode(ctx.Request.Body(), string(ctx.Request.Header.ContentEncoding()), limit)
}

// writeOne is POST /api/v1/audit/{remediation,workflow}: one record, 201
// once it is committed.
func (s *Server) writeOne(ctx *fasthttp.RequestCtx, kind wire.Kind) error {
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	if !s.cfg.Authorizer.Allowed(id, authz.ActionForKind(kind)) {
		return forbidden(id, kind)
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
	rec.ID, err = recordID(ctx, id, kind)
	if err != nil {
		return err
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
	// A duplicate is a retried Idempotency-Key: the record is stored, under
	// this ID, which is all the client asked for.
	writeJSON(ctx, fasthttp.StatusCreated, wire.WriteResponse{AuditID: rec.ID, Status: "persisted"})
	return nil
}

// recordID is the Idempotency-Key's deterministic ID, or a fresh one.
func recordID(ctx *fasthttp.RequestCtx, id auth.Identity, kind wire.Kind) (string, error) {
	key := ctx.Request.Header.Peek("Idempotency-Key")
	if len(key) == 0 {
		return wire.NewID(), nil
	}
	if err := wire.ValidateIdempotencyKey(string(key)); err != nil {
		return "", err
	}
	return wire.IDForKey(id.Key(), kind, string(key)), nil
}

// writeBatch is POST /api/v1/audit/batch: the agent's path. Invalid items are
// rejected one by one; the valid ones are written in one transaction; the
// answer gives each item's outcome in request order.
func (s *Server) writeBatch(ctx *fasthttp.RequestCtx) error {
	id, err := s.caller(ctx)
	if err != nil {
		return err
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
		rec, err := item.Decode(now)
		if err != nil {
			body := wire.ValidationFailed("", err.Error())
			var ve *wire.ValidationError
			if errors.As(err, &ve) {
				body = ve.Body()
			}
			resp.Results[i] = wire.ItemResult{ID: item.ID, Status: wire.StatusRejected, Error: body}
			resp.Rejected++
			s.metrics.records(item.Kind, "rejected", 1)
			continue
		}
		if !s.cfg.Authorizer.Allowed(id, authz.ActionForKind(rec.Kind)) {
			// Nothing of a batch is written when any of it is not allowed:
			// the caller is misconfigured, not the record.
			return forbidden(id, rec.Kind)
		}
		if rec.ID == "" {
			rec.ID = wire.NewID()
		}
		if rec.ReceivedAt.IsZero() {
			rec.ReceivedAt = now
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
	writeJSON(ctx, fasthttp.StatusOK, resp)
	return nil
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

func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(pctx); err != nil {
		s.log.Warn().Err(err).Msg("readiness: database unreachable")
		writeError(ctx, fasthttp.StatusServiceUnavailable, wire.ServiceUnavailable("PostgreSQL connection failed"))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString("ok\n")
}
