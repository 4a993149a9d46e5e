package loadgen

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrLossOrDuplicate is returned by the bench and the chaos run when an
// acknowledged record was lost or stored twice.
var ErrLossOrDuplicate = errors.New("bench: acknowledged records lost or duplicated")

// Verification is the exactly-once check of one load.
type Verification struct {
	Acked int `json:"acked"`
	// Lost: acknowledged IDs not in PostgreSQL.
	Lost int `json:"lost"`
	// Duplicated: extra rows for one logical write — an ID stored more than
	// once, or a row that no attempted write's Idempotency-Key explains.
	Duplicated int `json:"duplicated"`
	// Unacked: rows of writes that got no acknowledgement (timed out or
	// failed after the server stored them): allowed, reported.
	Unacked int `json:"unacked"`
	// KeyMismatch: acknowledged IDs that differ from the ID the
	// Idempotency-Key predicts (the server ignored the key).
	KeyMismatch int `json:"key_mismatch"`
	Rows        int `json:"rows"`
}

// OK reports no loss and no duplicate.
func (v *Verification) OK() bool { return v.Lost == 0 && v.Duplicated == 0 }

// Verify reads every ID stored in the audit tables of dsn and checks run's
// acknowledgements against them.
func Verify(ctx context.Context, dsn string, run *Run) (*Verification, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM remediation_audit UNION ALL SELECT id FROM workflow_audit`)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	stored := map[string]int{}
	total := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verify: %w", err)
		}
		stored[id]++
		total++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	v := &Verification{Acked: len(run.acks), Rows: total, KeyMismatch: run.mismatch}
	acked := make(map[string]struct{}, len(run.acks))
	for _, a := range run.acks {
		if _, dup := acked[a.ID]; dup {
			v.Duplicated++ // two writes acknowledged with one ID
			continue
		}
		acked[a.ID] = struct{}{}
		if stored[a.ID] == 0 {
			v.Lost++
		}
	}
	for id, n := range stored {
		v.Duplicated += n - 1
		if _, ok := acked[id]; ok {
			continue
		}
		if run.expected != nil {
			if _, ok := run.expected[id]; ok {
				v.Unacked++
			} else {
				v.Duplicated++
			}
		} else {
			v.Unacked++
		}
	}
	if run.expected == nil {
		// IDs are unpredictable: rows beyond the number of attempts are
		// duplicates.
		if extra := total - int(run.Attempts.Load()); extra > 0 {
			v.Duplicated += extra
			v.Unacked -= extra
		}
	}
	return v, nil
}
