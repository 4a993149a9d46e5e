package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/wire"
)

// RecordRef is a stored audit's identity: its kind, the service account
// that wrote it ("namespace/name") and its ID, which is unique per writer
// and kind, not globally (DESIGN.md decision 10).
type RecordRef struct {
	Kind           wire.Kind
	ServiceAccount string
	ID             string
}

// querier is what loadRecords needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Records reads stored audits back by identity, as wire records: the inverse
// of WriteBatch's mapping (NULL becomes the omitted ""/nil; durations are
// whole milliseconds). Audits not stored (or stored by another writer only)
// are absent from the map.
func (db *DB) Records(ctx context.Context, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	recs, err := loadRecords(ctx, db.pool, refs)
	if err != nil {
		return nil, wrapErr("storage: read records", err)
	}
	return recs, nil
}

// refColumns splits refs of one kind into the writer and ID arrays that
// the look-ups join against.
func refColumns(refs []RecordRef, kind wire.Kind) (sas, ids []string) {
	for _, r := range refs {
		if r.Kind == kind {
			sas, ids = append(sas, r.ServiceAccount), append(ids, r.ID)
		}
	}
	return sas, ids
}

func loadRecords(ctx context.Context, q querier, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	out := make(map[RecordRef]*wire.Record, len(refs))
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		sas, ids := refColumns(refs, kind)
		if len(ids) == 0 {
			continue
		}
		t := auditTables[kind]
		rows, err := q.Query(ctx, `SELECT `+t.columns+` FROM `+t.name+`
			JOIN unnest($1::text[], $2::text[]) AS k(ref_service_account, ref_id)
			ON id = k.ref_id AND service_account = k.ref_service_account`, sas, ids)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.name, err)
		}
		s := t.newScan()
		_, err = pgx.ForEachRow(rows, s.targets(), func() error {
			var e wire.AuditEntry
			s.entry(&e, true)
			ref := RecordRef{Kind: kind, ServiceAccount: e.ServiceAccount, ID: e.AuditID}
			out[ref] = &wire.Record{ID: e.AuditID, Kind: kind, ReceivedAt: e.ReceivedAt,
				Remediation: e.Remediation, Workflow: e.Workflow}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.name, err)
		}
	}
	return out, nil
}

// OccurredAt is the audit's own time: createdAt (remediation) or executedAt
// (workflow), else when it was received.
func OccurredAt(rec *wire.Record) time.Time {
	switch {
	case rec.Remediation != nil && rec.Remediation.CreatedAt != nil:
		return *rec.Remediation.CreatedAt
	case rec.Workflow != nil && rec.Workflow.ExecutedAt != nil:
		return *rec.Workflow.ExecutedAt
	}
	return rec.ReceivedAt
}
