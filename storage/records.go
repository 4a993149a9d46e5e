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

// Records reads stored audits back by identity, as wire records: the inverse
// of WriteBatch's mapping (NULL becomes the omitted ""/nil; durations are
// whole milliseconds). Audits not stored (or stored by another writer only)
// are absent from the map.
func (db *DB) Records(ctx context.Context, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	recs, err := db.loadRecords(ctx, refs)
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

// loadRecords finds each record's event time in audit_ids, then reads the
// rows one partition at a time (a batch's records are almost always in
// one), each statement planned over that partition only.
//
// Both look-ups probe the primary key once per key: a LATERAL subquery with
// LIMIT 1 is not turned into a join. As joins, they were planned as hash
// joins over scans of the whole table whenever it looked small to the
// planner (a new partition; statistics from when it was, as autovacuum
// leaves them while it grows fast): in `make bench`, 25-50 ms for each
// batch of the embedding pipeline, against a few for the probes.
func (db *DB) loadRecords(ctx context.Context, refs []RecordRef) (map[RecordRef]*wire.Record, error) {
	out := make(map[RecordRef]*wire.Record, len(refs))
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		sas, ids := refColumns(refs, kind)
		if len(ids) == 0 {
			continue
		}
		t := auditTables[kind]
		rows, err := db.pool.Query(ctx, keyLookupSQL, sas, ids, string(kind))
		if err != nil {
			return nil, fmt.Errorf("read keys: %w", err)
		}
		type stored struct {
			sa, id string
			at     time.Time
		}
		keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
			var k stored
			return k, r.Scan(&k.sa, &k.id, &k.at)
		})
		if err != nil {
			return nil, fmt.Errorf("read keys: %w", err)
		}
		spans, err := db.spans(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, s := range spans {
			sas, ids = sas[:0], ids[:0]
			for _, k := range keys {
				if s.holds(k.at) {
					sas, ids = append(sas, k.sa), append(ids, k.id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			where, args := spanWhere(t, s.from, s.to, []any{custom, sas, ids})
			rows, err := db.pool.Query(ctx, recordLookupSQL(t, where), args...)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", t.name, err)
			}
			entries, err := appendEntries(nil, rows, t)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", t.name, err)
			}
			for _, e := range entries {
				out[RecordRef{Kind: kind, ServiceAccount: e.ServiceAccount, ID: e.AuditID}] = &wire.Record{
					ID: e.AuditID, Kind: kind, ReceivedAt: e.ReceivedAt, Remediation: e.Remediation, Workflow: e.Workflow}
			}
		}
	}
	return out, nil
}

// keyLookupSQL reads the event times of the keys ($1 writers, $2 IDs) of
// kind $3 from audit_ids.
const keyLookupSQL = `SELECT r.sa, r.id, k.event_time FROM unnest($1::text[], $2::text[]) AS r(sa, id)
	CROSS JOIN LATERAL (SELECT event_time FROM audit_ids
		WHERE id = r.id AND service_account = r.sa AND kind = $3 LIMIT 1) k`

// recordLookupSQL reads the rows of t with these keys ($1 writers, $2 IDs)
// and a span's condition on the event time (where, from spanWhere).
func recordLookupSQL(t *auditTable, where string) string {
	return `SELECT a.* FROM unnest($1::text[], $2::text[]) AS k(sa, id)
	CROSS JOIN LATERAL (SELECT ` + t.columns + ` FROM ` + t.name + `
		WHERE id = k.id AND service_account = k.sa` + where + ` LIMIT 1) a`
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
