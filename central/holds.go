package central

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/ratelimit"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Legal holds: a hold keeps every audit of one remediation or workflow
// from retention, and the database refuses to delete them (storage,
// migration 0008). Every path needs hold:audit and is charged to the
// caller's read budget: a page of holds for its holds, anything else one
// row. Paths:
//
//	POST   /api/v1/legal-holds                    {remediationRequestID | workflowID, reason} → 201, Location
//	GET    /api/v1/legal-holds?active&limit&cursor
//	GET    /api/v1/legal-holds/{id}
//	DELETE /api/v1/legal-holds/{id}?reason=…      the release; 409 when released already
//
// A release's reason is a query parameter, not a body: RFC 9110 gives a
// DELETE body no meaning, and proxies may drop it.
const (
	pathHolds           = "/api/v1/legal-holds"
	prefixHolds         = pathHolds + "/"
	DefaultHoldPageSize = 100
	MaxHoldPageSize     = 1000
	// maxReasonParamLen bounds the release's reason parameter in bytes:
	// wire.MaxHoldReasonLen characters of up to 4 bytes each.
	maxReasonParamLen = 4 * wire.MaxHoldReasonLen
)

// HoldStore keeps legal holds; *storage.DB implements it.
type HoldStore interface {
	PlaceHold(ctx context.Context, h storage.Hold) (storage.Hold, error)
	ReleaseHold(ctx context.Context, id, by, reason string, at time.Time) (storage.Hold, error)
	Hold(ctx context.Context, id string) (storage.Hold, error)
	ListHolds(ctx context.Context, f storage.HoldFilter) ([]storage.Hold, error)
}

// HoldConfig enables the legal hold API (Config.Holds).
type HoldConfig struct {
	Store HoldStore
	// Limiter is the budget holds are charged to, in rows: pass the read
	// budget's (ReadConfig.Limiter), so that hold requests and reads share
	// one budget per service account. Required.
	Limiter *ratelimit.Limiter
}

// Validate reports the first missing dependency.
func (c *HoldConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("central: HoldConfig.Store is required")
	case c.Limiter == nil:
		return errors.New("central: HoldConfig.Limiter is required")
	}
	return nil
}

var errHoldsDisabled = fmt.Errorf("the legal hold API is not configured: %w", edge.NotFound())

func noSuchHold(id string) error {
	return fmt.Errorf("legal hold %q: %w", id, &edge.Refusal{Body: &wire.ErrorBody{Error: wire.CodeNotFound, Message: "No such legal hold"}})
}

// holdsRoot serves /api/v1/legal-holds: GET lists, POST places. It returns
// the endpoint's metrics label.
func (s *Server) holdsRoot(ctx *fasthttp.RequestCtx) string {
	var err error
	endpoint := "holds"
	switch string(ctx.Method()) {
	case fasthttp.MethodGet:
		err = s.listHolds(ctx)
	case fasthttp.MethodPost:
		endpoint = "hold_place"
		err = s.placeHold(ctx)
	default:
		err = edge.MethodNotAllowed(ctx, "GET, POST")
	}
	if err != nil {
		s.fail(ctx, err)
	}
	return endpoint
}

// holdRoute serves /api/v1/legal-holds/{id}: GET reads, DELETE releases;
// false when path is not under it.
func (s *Server) holdRoute(ctx *fasthttp.RequestCtx, path string) (endpoint string, ok bool) {
	if !strings.HasPrefix(path, prefixHolds) {
		return "", false
	}
	var err error
	endpoint = "hold"
	seg, perr := pathSegments(ctx, prefixHolds)
	switch {
	case perr != nil || len(seg) != 1:
		err = edge.NotFound()
	case string(ctx.Method()) == fasthttp.MethodGet:
		err = s.getHold(ctx, seg[0])
	case string(ctx.Method()) == fasthttp.MethodDelete:
		endpoint = "hold_release"
		err = s.releaseHold(ctx, seg[0])
	default:
		err = edge.MethodNotAllowed(ctx, "DELETE, GET")
	}
	if err != nil {
		s.fail(ctx, err)
	}
	return endpoint, true
}

// holder authenticates and authorizes a legal hold request.
func (s *Server) holder(ctx *fasthttp.RequestCtx) (auth.Identity, error) {
	if s.cfg.Holds == nil {
		return auth.Identity{}, errHoldsDisabled
	}
	id, err := s.caller(ctx)
	if err != nil {
		return auth.Identity{}, err
	}
	if err := s.authorize(ctx, id, authz.HoldAudit); err != nil {
		return auth.Identity{}, err
	}
	return id, nil
}

// holdContext bounds one statement of the hold API. A client that hangs up
// does not abort a placement or release in flight: it commits or not, and a
// retry is harmless (Idempotency-Key; a second release is a 409).
func (s *Server) holdContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
}

// placeHold is POST /api/v1/legal-holds.
func (s *Server) placeHold(ctx *fasthttp.RequestCtx) error {
	id, err := s.holder(ctx)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(ctx)
	if err != nil {
		return err
	}
	body, err := s.readBody(ctx, wire.MaxHoldBytes)
	if err != nil {
		return err
	}
	req, err := wire.DecodePlaceHold(body)
	if err != nil {
		return err
	}
	if err := s.admitTo(s.cfg.Holds.Limiter, id); err != nil {
		return err
	}
	kind, target := req.Target()
	h := storage.Hold{ID: wire.NewHoldID(), Kind: kind, CorrelationID: target, Reason: req.Reason,
		PlacedBy: id.Key(), PlacedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	if key != "" {
		h.ID = wire.HoldIDForKey(id.Key(), key)
	}
	hctx, cancel := s.holdContext(ctx)
	defer cancel()
	stored, err := s.cfg.Holds.Store.PlaceHold(hctx, h)
	if err != nil {
		return fmt.Errorf("place legal hold: %w", err)
	}
	s.cfg.Holds.Limiter.Charge(s.cfg.Now(), id.Key(), 1)
	s.log.Info().Str("hold", stored.ID).Str("kind", string(stored.Kind)).Str("by", id.Key()).Msg("legal hold placed")
	ctx.Response.Header.Set(fasthttp.HeaderLocation, prefixHolds+url.PathEscape(stored.ID))
	return edge.WriteJSON(ctx, fasthttp.StatusCreated, holdAnswer(&stored))
}

// getHold is GET /api/v1/legal-holds/{id}.
func (s *Server) getHold(ctx *fasthttp.RequestCtx, holdID string) error {
	id, err := s.holder(ctx)
	if err != nil {
		return err
	}
	if _, err := queryParams(ctx.QueryArgs()); err != nil {
		return err
	}
	if err := s.admitTo(s.cfg.Holds.Limiter, id); err != nil {
		return err
	}
	hctx, cancel := s.holdContext(ctx)
	defer cancel()
	h, err := s.cfg.Holds.Store.Hold(hctx, holdID)
	if errors.Is(err, storage.ErrHoldNotFound) {
		return noSuchHold(holdID)
	}
	if err != nil {
		return fmt.Errorf("read legal hold: %w", err)
	}
	s.cfg.Holds.Limiter.Charge(s.cfg.Now(), id.Key(), 1)
	return edge.WriteJSON(ctx, fasthttp.StatusOK, holdAnswer(&h))
}

// releaseHold is DELETE /api/v1/legal-holds/{id}?reason=….
func (s *Server) releaseHold(ctx *fasthttp.RequestCtx, holdID string) error {
	id, err := s.holder(ctx)
	if err != nil {
		return err
	}
	params, err := queryParamsUpTo(ctx.QueryArgs(), maxReasonParamLen, []string{"reason"})
	if err != nil {
		return err
	}
	reason, ok := params["reason"]
	if !ok {
		return badParam("reason", "reason is required: why the hold is released (DELETE /api/v1/legal-holds/{id}?reason=…)")
	}
	if err := wire.ValidateHoldReason("reason", reason); err != nil {
		return err
	}
	if err := s.admitTo(s.cfg.Holds.Limiter, id); err != nil {
		return err
	}
	hctx, cancel := s.holdContext(ctx)
	defer cancel()
	h, err := s.cfg.Holds.Store.ReleaseHold(hctx, holdID, id.Key(), reason, s.cfg.Now().UTC().Truncate(time.Microsecond))
	switch {
	case errors.Is(err, storage.ErrHoldNotFound):
		return noSuchHold(holdID)
	case errors.Is(err, storage.ErrHoldReleased):
		msg := "Legal hold " + holdID + " was released already"
		if h.ReleasedAt != nil {
			msg += fmt.Sprintf(", at %s by %s", h.ReleasedAt.Format(time.RFC3339Nano), h.ReleasedBy)
		}
		return &conflictError{message: msg + ": a hold is released once"}
	case err != nil:
		return fmt.Errorf("release legal hold: %w", err)
	}
	s.cfg.Holds.Limiter.Charge(s.cfg.Now(), id.Key(), 1)
	s.log.Info().Str("hold", h.ID).Str("kind", string(h.Kind)).Str("by", id.Key()).Msg("legal hold released")
	return edge.WriteJSON(ctx, fasthttp.StatusOK, holdAnswer(&h))
}

// listHolds is GET /api/v1/legal-holds: a page of holds in the order they
// were placed.
func (s *Server) listHolds(ctx *fasthttp.RequestCtx) error {
	id, err := s.holder(ctx)
	if err != nil {
		return err
	}
	params, err := queryParams(ctx.QueryArgs(), []string{"active", "limit", "cursor"})
	if err != nil {
		return err
	}
	q, err := parseHoldQuery(params)
	if err != nil {
		return err
	}
	if err := s.admitTo(s.cfg.Holds.Limiter, id); err != nil {
		return err
	}
	hctx, cancel := s.holdContext(ctx)
	defer cancel()
	holds, err := s.cfg.Holds.Store.ListHolds(hctx, storage.HoldFilter{Active: q.active, After: q.after, Limit: q.limit + 1})
	if err != nil {
		return fmt.Errorf("list legal holds: %w", err)
	}
	list := wire.LegalHoldList{Holds: make([]wire.LegalHold, 0, min(len(holds), q.limit))}
	for i := range holds[:min(len(holds), q.limit)] {
		list.Holds = append(list.Holds, holdAnswer(&holds[i]))
	}
	if len(holds) > q.limit {
		last := holds[q.limit-1]
		list.NextCursor = holdCursor{filter: q.filter(), at: last.PlacedAt, id: last.ID}.encode()
	}
	s.cfg.Holds.Limiter.Charge(s.cfg.Now(), id.Key(), len(list.Holds))
	return edge.WriteJSON(ctx, fasthttp.StatusOK, list)
}

// holdAnswer is h as the API answers it.
func holdAnswer(h *storage.Hold) wire.LegalHold {
	out := wire.LegalHold{ID: h.ID, Reason: h.Reason, PlacedBy: h.PlacedBy, PlacedAt: h.PlacedAt,
		Active: h.Active(), ReleasedBy: h.ReleasedBy, ReleasedAt: h.ReleasedAt, ReleaseReason: h.ReleaseReason}
	if h.Kind == wire.KindWorkflow {
		out.WorkflowID = h.CorrelationID
	} else {
		out.RemediationRequestID = h.CorrelationID
	}
	return out
}

// holdQuery is a parsed GET /api/v1/legal-holds.
type holdQuery struct {
	active *bool // nil: every hold
	limit  int
	after  *storage.HoldPosition
}

// filter names the query's selection in its cursors.
func (q *holdQuery) filter() byte {
	switch {
	case q.active == nil:
		return 'a'
	case *q.active:
		return 't'
	default:
		return 'f'
	}
}

func parseHoldQuery(params map[string]string) (*holdQuery, error) {
	q := &holdQuery{limit: DefaultHoldPageSize}
	if v, ok := params["active"]; ok {
		if v != "true" && v != "false" {
			return nil, badParam("active", `active must be "true" (holds in force) or "false" (released holds); leave it out for both`)
		}
		active := v == "true"
		q.active = &active
	}
	if v, ok := params["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHoldPageSize {
			return nil, badParam("limit", "limit must be a whole number from 1 to "+strconv.Itoa(MaxHoldPageSize))
		}
		q.limit = n
	}
	if v, ok := params["cursor"]; ok {
		c, err := decodeHoldCursor(v, q.filter())
		if err != nil {
			return nil, badParam("cursor", err.Error())
		}
		q.after = &storage.HoldPosition{PlacedAt: c.at, ID: c.id}
	}
	return q, nil
}

// holdCursor is where the next page of holds starts: the last hold's
// placement time and ID, and the selection (active) it was made for. Opaque
// to clients, unsigned (it reveals nothing the page did not): base64url of
//
//	'H' | filter (1) | placed_at, Unix µs (8, big endian) | uvarint len + ID
//
// Its first byte tells it from an audit query's cursor.
type holdCursor struct {
	filter byte
	at     time.Time
	id     string
}

const holdCursorTag = 'H'

var errHoldCursorForeign = errors.New("cursor belongs to another query: keep the active parameter of the query that returned it")

func (c holdCursor) encode() string {
	b := make([]byte, 0, 2+8+1+len(c.id))
	b = append(b, holdCursorTag, c.filter)
	b = binary.BigEndian.AppendUint64(b, uint64(c.at.UnixMicro()))
	b = binary.AppendUvarint(b, uint64(len(c.id)))
	b = append(b, c.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeHoldCursor(s string, filter byte) (holdCursor, error) {
	if len(s) > maxCursorLen {
		return holdCursor{}, errCursorMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2+8 || b[0] != holdCursorTag {
		return holdCursor{}, errCursorMalformed
	}
	c := holdCursor{filter: b[1], at: time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC()}
	var rest []byte
	var ok bool
	if c.id, rest, ok = cutString(b[10:]); !ok || len(rest) != 0 || c.id == "" {
		return holdCursor{}, errCursorMalformed
	}
	if c.filter != filter {
		return holdCursor{}, errHoldCursorForeign
	}
	return c, nil
}
