package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubernaut/datastorage/wire"
)

// Legal holds (migration 0008, SCHEMA.md "Legal holds"): a hold names a
// remediation (its remediation_request_id) or a workflow (its workflow_id),
// and while it is active the audit rows it names are kept: retention keeps
// every partition holding one, and the database refuses to delete, change
// or truncate them (the migration's triggers, for any client). A hold is
// placed once, released once, and never deleted; its record says who placed
// it, when and why, and the same of its release.

var (
	// ErrHoldNotFound: no hold has this ID.
	ErrHoldNotFound = errors.New("storage: no such legal hold")
	// ErrHoldReleased: the hold was released already; a hold is released
	// once.
	ErrHoldReleased = errors.New("storage: legal hold already released")
)

// The SQLSTATEs of migration 0008's guard, in the *pgconn.PgError of a
// refused statement.
const (
	// SQLStateHeld refuses a DELETE, UPDATE or TRUNCATE that would remove
	// or change audit rows under an active hold; its hint names the hold.
	SQLStateHeld = "LH001"
	// SQLStateHoldsImmutable refuses any change to legal_holds but placing
	// an active hold and releasing it once.
	SQLStateHoldsImmutable = "LH002"
)

// MaxHoldsLimit is the largest HoldFilter.Limit: the API's largest page,
// 1,000, and the one row more that tells whether another page follows.
const MaxHoldsLimit = 1001

// Hold is one legal hold as stored. CorrelationID is the
// remediationRequestID of the remediation audits it holds (Kind
// remediation) or the workflowID of the workflow audits (Kind workflow).
// PlacedBy and ReleasedBy are service accounts, "namespace/name". An active
// hold has no release: ReleasedAt nil, ReleasedBy and ReleaseReason "".
type Hold struct {
	ID            string
	Kind          wire.Kind
	CorrelationID string
	Reason        string
	PlacedBy      string
	PlacedAt      time.Time
	ReleasedBy    string
	ReleasedAt    *time.Time
	ReleaseReason string
}

// Active reports whether h has not been released.
func (h *Hold) Active() bool { return h.ReleasedAt == nil }

// HoldPosition is a hold's place in the order of ListHolds: when it was
// placed, then its ID.
type HoldPosition struct {
	PlacedAt time.Time
	ID       string
}

// HoldFilter selects a page of holds.
type HoldFilter struct {
	// Active, when set, keeps the active holds (true) or the released ones
	// (false); nil: both.
	Active *bool
	// After, when set, keeps only holds strictly after this position (the
	// last hold of the previous page).
	After *HoldPosition
	Limit int // 1..MaxHoldsLimit
}

const holdColumns = "id, kind, correlation_id, reason, placed_by, placed_at, released_by, released_at, release_reason"

// holdScan reads one row of holdColumns.
type holdScan struct {
	h                         Hold
	releasedBy, releaseReason pgtype.Text
	releasedAt                pgtype.Timestamptz
	kind                      string
}

func (s *holdScan) targets() []any {
	return []any{&s.h.ID, &s.kind, &s.h.CorrelationID, &s.h.Reason, &s.h.PlacedBy, &s.h.PlacedAt,
		&s.releasedBy, &s.releasedAt, &s.releaseReason}
}

func (s *holdScan) hold() Hold {
	h := s.h
	h.Kind = wire.Kind(s.kind)
	h.PlacedAt = h.PlacedAt.UTC()
	h.ReleasedBy, h.ReleaseReason = s.releasedBy.String, s.releaseReason.String
	if s.releasedAt.Valid {
		at := s.releasedAt.Time.UTC()
		h.ReleasedAt = &at
	}
	return h
}

func scanHold(row pgx.Row) (Hold, error) {
	var s holdScan
	if err := row.Scan(s.targets()...); err != nil {
		return Hold{}, err
	}
	return s.hold(), nil
}

// validate checks a hold to be placed.
func (h *Hold) validate() error {
	for _, f := range [...]struct{ field, value string }{
		{"id", h.ID}, {"correlationID", h.CorrelationID}, {"reason", h.Reason}, {"placedBy", h.PlacedBy},
	} {
		if err := checkValue(f.value); err != "" {
			return &QueryError{f.field, err}
		}
	}
	switch {
	case h.Kind != wire.KindRemediation && h.Kind != wire.KindWorkflow:
		return &QueryError{"kind", fmt.Sprintf("unknown kind %q: want %q or %q", h.Kind, wire.KindRemediation, wire.KindWorkflow)}
	case h.PlacedAt.IsZero():
		return &QueryError{"placedAt", "is required"}
	case !h.Active() || h.ReleasedBy != "" || h.ReleaseReason != "":
		return &QueryError{"releasedAt", "a hold is placed active: release it with ReleaseHold"}
	}
	return nil
}

// PlaceHold stores h, an active hold whose every field but the release is
// set (the ID included: wire.NewHoldID, or wire.HoldIDForKey for a request
// with an Idempotency-Key), and returns it as stored (times at microsecond
// precision, in UTC). It is idempotent by ID: when a hold with h.ID that
// the same service account placed exists already, that one is returned
// unchanged, released or not, like a retried record. A refused hold is a
// *QueryError. The IDs it names need not have any audit yet: a hold may come
// before the records.
func (db *DB) PlaceHold(ctx context.Context, h Hold) (Hold, error) {
	const op = "storage: place legal hold"
	if err := h.validate(); err != nil {
		return Hold{}, err
	}
	stored, err := scanHold(db.pool.QueryRow(ctx, `INSERT INTO legal_holds (id, kind, correlation_id, reason, placed_by, placed_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING `+holdColumns,
		h.ID, string(h.Kind), h.CorrelationID, h.Reason, h.PlacedBy, h.PlacedAt))
	if errors.Is(err, pgx.ErrNoRows) { // the ID exists: a retry
		if stored, err = db.Hold(ctx, h.ID); err != nil {
			return Hold{}, fmt.Errorf("%s: %w", op, err)
		}
		if stored.PlacedBy != h.PlacedBy {
			return Hold{}, fmt.Errorf("%s: hold %s exists, placed by another service account", op, h.ID)
		}
		return stored, nil
	}
	if err != nil {
		return Hold{}, wrapErr(op, err)
	}
	return stored, nil
}

// ReleaseHold releases the active hold id: by (a service account), at and
// reason are recorded, and the rows it held may go once no other active
// hold names them. It returns the released hold. An unknown id is
// ErrHoldNotFound; a hold released already is ErrHoldReleased, returned
// with the hold as stored (who released it, when, why).
func (db *DB) ReleaseHold(ctx context.Context, id, by, reason string, at time.Time) (Hold, error) {
	const op = "storage: release legal hold"
	for _, f := range [...]struct{ field, value string }{{"releasedBy", by}, {"releaseReason", reason}} {
		if err := checkValue(f.value); err != "" {
			return Hold{}, &QueryError{f.field, err}
		}
	}
	if at.IsZero() {
		return Hold{}, &QueryError{"releasedAt", "is required"}
	}
	if !matchable(id) {
		return Hold{}, fmt.Errorf("%s %q: %w", op, id, ErrHoldNotFound)
	}
	released, err := scanHold(db.pool.QueryRow(ctx, `UPDATE legal_holds
		SET released_by = $2, released_at = $3, release_reason = $4
		WHERE id = $1 AND released_at IS NULL RETURNING `+holdColumns, id, by, at, reason))
	if errors.Is(err, pgx.ErrNoRows) {
		current, err := db.Hold(ctx, id)
		if err != nil {
			return Hold{}, fmt.Errorf("%s: %w", op, err)
		}
		return current, fmt.Errorf("%s %s: released at %s by %s: %w", op, id,
			current.ReleasedAt.Format(time.RFC3339Nano), current.ReleasedBy, ErrHoldReleased)
	}
	if err != nil {
		return Hold{}, wrapErr(op, err)
	}
	return released, nil
}

// Hold reads one hold; ErrHoldNotFound when there is none with this ID.
func (db *DB) Hold(ctx context.Context, id string) (Hold, error) {
	const op = "storage: read legal hold"
	if !matchable(id) {
		return Hold{}, fmt.Errorf("%s %q: %w", op, id, ErrHoldNotFound)
	}
	h, err := scanHold(db.pool.QueryRow(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Hold{}, fmt.Errorf("%s %q: %w", op, id, ErrHoldNotFound)
	}
	if err != nil {
		return Hold{}, wrapErr(op, err)
	}
	return h, nil
}

// ListHolds returns at most f.Limit holds in the order they were placed
// (placed_at, then id as bytes), after f.After when set. Holds are few (one
// per remediation or workflow under litigation, say, not per record): the
// statement sorts the matching holds, which no index orders.
func (db *DB) ListHolds(ctx context.Context, f HoldFilter) ([]Hold, error) {
	const op = "storage: list legal holds"
	if f.Limit < 1 || f.Limit > MaxHoldsLimit {
		return nil, &QueryError{"limit", fmt.Sprintf("must be between 1 and %d, got %d", MaxHoldsLimit, f.Limit)}
	}
	var where []string
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	switch {
	case f.Active == nil:
	case *f.Active:
		where = append(where, "released_at IS NULL")
	default:
		where = append(where, "released_at IS NOT NULL")
	}
	if a := f.After; a != nil {
		if a.PlacedAt.IsZero() || !matchable(a.ID) {
			return nil, &QueryError{"after", "not the position of a stored hold"}
		}
		where = append(where, `(placed_at, id COLLATE "C") > (`+param(a.PlacedAt)+", "+param(a.ID)+")")
	}
	sql := "SELECT " + holdColumns + " FROM legal_holds"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY placed_at, id COLLATE "C" LIMIT ` + param(f.Limit)
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	var s holdScan
	holds := make([]Hold, 0, min(f.Limit, 64))
	if _, err := pgx.ForEachRow(rows, s.targets(), func() error {
		holds = append(holds, s.hold())
		return nil
	}); err != nil {
		return nil, wrapErr(op, err)
	}
	return holds, nil
}
