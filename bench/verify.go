package bench

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// poller watches a scenario's database while the load runs and drains:
// the row count (persisted over time), the embeddings count when the
// central writes embeddings, and when sampled acknowledged IDs appear as
// rows and as embedded audits (lags).
type poller struct {
	dsn      string
	embTable string // "": detect the central's
	samples  chan loadgen.Ack
	start    time.Time

	persisted atomic.Int64
	embedded  atomic.Int64 // -1: no embeddings table

	mu     sync.Mutex
	counts []countPoint // persisted and embedded over time
	lags   []lagPoint
	// vecLags: sampled records from acceptance to their embedding link;
	// vecWaiting: samples not embedded yet when polling stopped, with the
	// time they had waited (a lower bound of their lag).
	vecLags    []lagPoint
	vecWaiting []time.Duration
}

type countPoint struct {
	at                  time.Duration
	persisted, embedded int64
}

type lagPoint struct {
	accepted time.Duration // since start
	lag      time.Duration
}

func newPoller(dsn string, start time.Time) *poller {
	p := &poller{dsn: dsn, samples: make(chan loadgen.Ack, 4096), start: start}
	p.embedded.Store(-1)
	return p
}

const rowsQuery = `SELECT (SELECT count(*) FROM remediation_audit) + (SELECT count(*) FROM workflow_audit)`

// embeddingsTable is "audit_embeddings" when the central's embedding
// pipeline has created it (one row per embedded audit), else "".
func embeddingsTable(ctx context.Context, conn *pgx.Conn) string {
	var exists bool
	_ = conn.QueryRow(ctx, `SELECT to_regclass('audit_embeddings') IS NOT NULL`).Scan(&exists)
	if exists {
		return "audit_embeddings"
	}
	return ""
}

// run polls until ctx ends.
func (p *poller) run(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	pending := map[string]time.Time{}    // sampled, row not seen yet
	vecPending := map[string]time.Time{} // row seen, embedding not seen yet
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	embTable := p.embTable
	defer func() {
		end := time.Now()
		p.mu.Lock()
		defer p.mu.Unlock()
		if embTable == "" {
			return
		}
		for _, at := range vecPending {
			p.vecWaiting = append(p.vecWaiting, end.Sub(at))
		}
	}()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	drain:
		for {
			select {
			case a := <-p.samples:
				pending[a.ID] = a.At
			default:
				break drain
			}
		}
		now := time.Now()
		var found []lagPoint
		rows := arrived(ctx, conn, rowsByID, pending)
		for _, at := range rows {
			found = append(found, lagPoint{accepted: at.Sub(p.start), lag: now.Sub(at)})
		}
		p.mu.Lock()
		p.lags = append(p.lags, found...)
		p.mu.Unlock()
		if embTable != "" {
			// Embedded already (the naive design embeds before answering)?
			p.pollVectors(ctx, conn, embTable, rows, now)
		}
		maps.Copy(vecPending, rows)
		if n%5 == 0 { // counts every 500 ms
			var c int64
			if err := conn.QueryRow(ctx, rowsQuery).Scan(&c); err == nil {
				p.persisted.Store(c)
			}
			if embTable == "" && n%50 == 0 {
				embTable = embeddingsTable(ctx, conn)
			}
			if embTable != "" {
				var e int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+embTable).Scan(&e); err == nil {
					p.embedded.Store(e)
				}
				p.pollVectors(ctx, conn, embTable, vecPending, now)
			}
			p.mu.Lock()
			p.counts = append(p.counts, countPoint{at: now.Sub(p.start), persisted: p.persisted.Load(), embedded: p.embedded.Load()})
			p.mu.Unlock()
		}
	}
}

// pollVectors moves the sampled records whose embedding link is stored from
// waiting to vecLags. All waiting records are polled every 500 ms (vector lags
// are seconds, and a query of thousands of IDs every 100 ms would load the
// database under test); records whose row just appeared, at once.
func (p *poller) pollVectors(ctx context.Context, conn *pgx.Conn, table string, waiting map[string]time.Time, now time.Time) {
	var found []lagPoint
	for _, at := range arrived(ctx, conn, "SELECT audit_id FROM "+table+" WHERE audit_id = ANY($1)", waiting) {
		found = append(found, lagPoint{accepted: at.Sub(p.start), lag: now.Sub(at)})
	}
	p.mu.Lock()
	p.vecLags = append(p.vecLags, found...)
	p.mu.Unlock()
}

// rowsByID probes the primary keys of both tables once per sampled ID (a
// LATERAL subquery with LIMIT 1 is not turned into a join): written as
// id = ANY($1), it was planned, on statistics taken while the tables were
// small, as scans of every partition, 30 ms every 100 ms at 80k rows, taken
// from the system under test and billed to PostgreSQL.
const rowsByID = `SELECT k.id FROM unnest($1::text[]) AS k(id) CROSS JOIN LATERAL (
	SELECT 1 FROM remediation_audit WHERE id = k.id
	UNION ALL SELECT 1 FROM workflow_audit WHERE id = k.id LIMIT 1) r`

// arrived runs query ($1: the IDs waiting) and moves the IDs it returns out
// of waiting, into the result with their acceptance times. A failed query
// moves nothing: the next poll asks again.
func arrived(ctx context.Context, conn *pgx.Conn, query string, waiting map[string]time.Time) map[string]time.Time {
	if len(waiting) == 0 {
		return nil
	}
	ids := make([]string, 0, len(waiting))
	for id := range waiting {
		ids = append(ids, id)
	}
	// Planned at every poll (an unnamed statement): a generic plan settled
	// while the tables were empty would not follow their growth.
	rows, err := conn.Query(ctx, query, pgx.QueryExecModeCacheDescribe, ids)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		if rows.Scan(&id) != nil {
			continue
		}
		if at, ok := waiting[id]; ok {
			out[id] = at
			delete(waiting, id)
		}
	}
	return out
}

// rowsPerCommit is the audit rows of dsn over the transactions that stored
// them, told apart by xmin (the inserting transaction's ID; nothing is
// frozen in a run this short).
func rowsPerCommit(ctx context.Context, dsn string) (float64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var rows, commits int64
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT x) FROM (
		SELECT xmin::text AS x FROM remediation_audit UNION ALL SELECT xmin::text FROM workflow_audit) AS t`).Scan(&rows, &commits); err != nil {
		return 0, fmt.Errorf("rows per commit: %w", err)
	}
	if commits == 0 {
		return 0, nil
	}
	return float64(rows) / float64(commits), nil
}
