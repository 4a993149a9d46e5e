package chaos

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/wire"
)

// The resend fault (FaultResendElsewhere) takes records the load had
// acknowledged and the central committed, and sends them again directly to
// the central's batch endpoint, as the service account their agent forwards
// as, with their ID and kind, but without their event time (createdAt,
// executedAt) and with a receivedAt in another day: the event time the
// central derives then falls in another partition than the stored row's,
// where the partition's own key cannot see it and only audit_ids can. Every
// item must come back duplicate, and each row must stay one, unchanged, in
// its partition, then and at the end of the run. A few records are resent
// as they were (their own partition) for contrast.

const (
	// resendOther records per round go in one batch, more than storage's
	// COPY threshold (16 rows), so that the COPY path meets the conflict
	// first; resendSame go in another, below it.
	resendOther = 24
	resendSame  = 4
	keptAcks    = 4096 // the load's latest acknowledged records the fault picks from
)

// acked is a record the load had acknowledged, and the agent it went through.
type acked struct {
	rec   wire.Record
	agent int
}

// ackPool keeps the load's latest acknowledged records (loadgen's
// Run.OnAck). It is safe for concurrent use.
type ackPool struct {
	mu   sync.Mutex
	ring []acked
	next int
}

func newAckPool(n int) *ackPool { return &ackPool{ring: make([]acked, 0, n)} }

func (p *ackPool) put(a acked) {
	p.mu.Lock()
	if len(p.ring) < cap(p.ring) {
		p.ring = append(p.ring, a)
	} else {
		p.ring[p.next] = a
		p.next = (p.next + 1) % len(p.ring)
	}
	p.mu.Unlock()
}

// of lists the records that went through agent j.
func (p *ackPool) of(j int) []acked {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []acked
	for _, a := range p.ring {
		if a.agent == j {
			out = append(out, a)
		}
	}
	return out
}

// storedRow is one row as PostgreSQL holds it.
type storedRow struct {
	partition string // its tableoid
	content   string // to_jsonb(row)
	ref       string // remediation_request_id or workflow_id
	event     time.Time
	received  time.Time
}

// resentRecord is a record the fault sent again, and its row before.
type resentRecord struct {
	kind   wire.Kind
	id, sa string
	before storedRow
}

// ResendReport counts what the resend fault did.
type ResendReport struct {
	// OtherPartition: records resent without their event time and with a
	// receivedAt in another day's partition; SamePartition: resent as they
	// were.
	OtherPartition int `json:"other_partition"`
	SamePartition  int `json:"same_partition"`
	// Duplicate: items the central answered duplicate (every one must be).
	Duplicate int `json:"duplicate"`
	// Changed: resent records not stored exactly once, or whose row (its
	// content or its partition) changed, at the end of the run.
	Changed int `json:"changed"`
}

// resendElsewhere is the fault: a round of resends of records that went
// through one agent.
func (e *env) resendElsewhere(ctx context.Context) (int, error) {
	j := e.rng.IntN(len(e.agents))
	picks, rows, err := e.pickCommitted(ctx, j, resendOther+resendSame, 30*time.Second)
	if err != nil {
		return j, err
	}
	var other, same []wire.Record
	for i, a := range picks {
		row := rows[i]
		if err := matchesLoad(a.rec, row); err != nil {
			return j, err
		}
		if i < resendOther {
			rec, err := e.elsewhere(a.rec, row)
			if err != nil {
				return j, err
			}
			other = append(other, rec)
		} else {
			rec := a.rec
			rec.ReceivedAt = row.received
			same = append(same, rec)
		}
		e.resent = append(e.resent, resentRecord{kind: a.rec.Kind, id: a.rec.ID, sa: e.agentSA[j], before: row})
		e.resentIDs[a.rec.ID] = struct{}{}
	}
	c, err := client.New(client.Config{BaseURL: e.centralURL, Token: e.agentToken[j]})
	if err != nil {
		return j, err
	}
	defer c.Close(ctx)
	for _, batch := range [][]wire.Record{other, same} {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		resp, err := c.WriteBatch(sctx, batch)
		cancel()
		if err != nil {
			return j, fmt.Errorf("resend %d records as %s: %w", len(batch), e.agentSA[j], err)
		}
		e.res.Resent.Duplicate += resp.Duplicates
		if err := allDuplicate(batch, resp); err != nil {
			return j, err
		}
	}
	e.res.Resent.OtherPartition += len(other)
	e.res.Resent.SamePartition += len(same)
	// Still one row each, unchanged, in its partition.
	if bad, err := e.changedResent(ctx, e.resent[len(e.resent)-len(picks):]); err != nil || len(bad) > 0 {
		return j, cmp.Or(err, fmt.Errorf("%d resent records changed or stored again: %s", len(bad), firstFew(bad)))
	}
	return j, nil
}

// pickCommitted picks n records that went through agent j, were not resent
// before and are in PostgreSQL, with their rows; it waits for enough of
// them at most within.
func (e *env) pickCommitted(ctx context.Context, j, n int, within time.Duration) ([]acked, []storedRow, error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(within)
	for {
		var cands []acked
		for _, a := range e.pool.of(j) {
			if _, done := e.resentIDs[a.rec.ID]; !done {
				cands = append(cands, a)
			}
		}
		e.rng.Shuffle(len(cands), func(a, b int) { cands[a], cands[b] = cands[b], cands[a] })
		cands = cands[:min(len(cands), 20*n)]
		stored, err := readRows(ctx, conn, e.agentSA[j], cands)
		if err != nil {
			return nil, nil, err
		}
		var picks []acked
		var rows []storedRow
		for _, a := range cands {
			if rs := stored[a.rec.ID]; len(rs) > 0 && len(picks) < n {
				if len(rs) > 1 {
					return nil, nil, fmt.Errorf("%s %s is stored %d times before any resend", a.rec.Kind, a.rec.ID, len(rs))
				}
				picks, rows = append(picks, a), append(rows, rs[0])
			}
		}
		if len(picks) == n {
			return picks, rows, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("only %d of %d acknowledged records through %s in PostgreSQL after %s",
				len(picks), n, e.agents[j].Name, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readRows reads the rows of service account sa with the records' IDs, by
// ID (more than one: stored more than once).
func readRows(ctx context.Context, conn *pgx.Conn, sa string, recs []acked) (map[string][]storedRow, error) {
	ids := map[wire.Kind][]string{}
	for _, a := range recs {
		ids[a.rec.Kind] = append(ids[a.rec.Kind], a.rec.ID)
	}
	out := map[string][]storedRow{}
	for _, t := range auditTables {
		if len(ids[t.kind]) == 0 {
			continue
		}
		ref := "remediation_request_id"
		if t.kind == wire.KindWorkflow {
			ref = "workflow_id"
		}
		rows, err := conn.Query(ctx, `SELECT id, tableoid::regclass::text, to_jsonb(t)::text, `+ref+`, `+t.event+`, received_at
			FROM `+t.name+` t WHERE service_account = $1 AND id = ANY($2)`, sa, ids[t.kind])
		if err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		var id string
		var r storedRow
		if _, err := pgx.ForEachRow(rows, []any{&id, &r.partition, &r.content, &r.ref, &r.event, &r.received}, func() error {
			out[id] = append(out[id], r)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
	}
	return out, nil
}

// matchesLoad checks that row is the record the load wrote: its request or
// workflow ID, and its event time (the record's, else its receivedAt).
func matchesLoad(rec wire.Record, row storedRow) error {
	var ref string
	var event *time.Time
	if rec.Kind == wire.KindWorkflow {
		ref, event = rec.Workflow.WorkflowID, rec.Workflow.ExecutedAt
	} else {
		ref, event = rec.Remediation.RemediationRequestID, rec.Remediation.CreatedAt
	}
	want := row.received
	if event != nil {
		want = *event
	}
	// PostgreSQL keeps microseconds.
	if d := row.event.Sub(want); row.ref != ref || d <= -time.Microsecond || d >= time.Microsecond {
		return fmt.Errorf("the stored %s %s (%s at %s) is not what the load wrote (%s at %s)",
			rec.Kind, rec.ID, row.ref, row.event.UTC().Format(time.RFC3339Nano), ref, want.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// elsewhere is rec without its event time and with a receivedAt in another
// day's partition than row's: a daily partition from the history bound to
// today, at least a minute in the past.
func (e *env) elsewhere(rec wire.Record, row storedRow) (wire.Record, error) {
	table, _ := tableOf(rec.Kind)
	now := time.Now().UTC()
	var days []time.Time
	for d := e.history; !d.After(now); d = d.AddDate(0, 0, 1) {
		if dayPartition(table, d) != row.partition && now.Add(-time.Minute).After(d) {
			days = append(days, d)
		}
	}
	if len(days) == 0 {
		return rec, fmt.Errorf("no other day's partition for %s %s (in %s)", rec.Kind, rec.ID, row.partition)
	}
	day := days[e.rng.IntN(len(days))]
	span := min(24*time.Hour, now.Add(-time.Minute).Sub(day))
	rec.ReceivedAt = day.Add(time.Duration(e.rng.Int64N(int64(span))))
	if rec.Kind == wire.KindWorkflow {
		w := *rec.Workflow
		w.ExecutedAt = nil
		rec.Workflow = &w
	} else {
		r := *rec.Remediation
		r.CreatedAt = nil
		rec.Remediation = &r
	}
	return rec, nil
}

// allDuplicate checks that the central answered duplicate for every record.
func allDuplicate(batch []wire.Record, resp *wire.BatchResponse) error {
	if len(resp.Results) != len(batch) {
		return fmt.Errorf("resend: %d results for %d records", len(resp.Results), len(batch))
	}
	var bad []string
	for i, r := range resp.Results {
		if r.Status != wire.StatusDuplicate || r.ID != batch[i].ID {
			msg := fmt.Sprintf("%s %s: %s", batch[i].Kind, batch[i].ID, r.Status)
			if r.Error != nil {
				msg += " (" + r.Error.Error + ": " + r.Error.Message + ")"
			}
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("resend: %d of %d records not answered duplicate: %s", len(bad), len(batch), firstFew(bad))
	}
	return nil
}

// firstFew joins the first messages of a list, for an error.
func firstFew(msgs []string) string {
	const n = 5
	if len(msgs) <= n {
		return strings.Join(msgs, "; ")
	}
	return strings.Join(msgs[:n], "; ") + fmt.Sprintf("; and %d more", len(msgs)-n)
}

// changedResent reads the resent records' rows again and names those not
// stored exactly once, or whose content or partition changed.
func (e *env) changedResent(ctx context.Context, recs []resentRecord) ([]string, error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	bySA := map[string][]acked{}
	for _, r := range recs {
		bySA[r.sa] = append(bySA[r.sa], acked{rec: wire.Record{ID: r.id, Kind: r.kind}})
	}
	stored := map[string]map[string][]storedRow{}
	for sa, as := range bySA {
		if stored[sa], err = readRows(ctx, conn, sa, as); err != nil {
			return nil, err
		}
	}
	var bad []string
	for _, r := range recs {
		rs := stored[r.sa][r.id]
		switch {
		case len(rs) != 1:
			bad = append(bad, fmt.Sprintf("%s %s stored %d times", r.kind, r.id, len(rs)))
		case rs[0].partition != r.before.partition:
			bad = append(bad, fmt.Sprintf("%s %s moved from %s to %s", r.kind, r.id, r.before.partition, rs[0].partition))
		case rs[0].content != r.before.content:
			bad = append(bad, fmt.Sprintf("%s %s changed: %s, was %s", r.kind, r.id, rs[0].content, r.before.content))
		}
	}
	return bad, nil
}

// checkResent is the end of the run's check of every resent record; it
// counts the changed ones and notes what the fault did.
func (e *env) checkResent(ctx context.Context) error {
	if len(e.resent) == 0 {
		return nil
	}
	bad, err := e.changedResent(ctx, e.resent)
	if err != nil {
		return fmt.Errorf("check resent records: %w", err)
	}
	r := &e.res.Resent
	r.Changed = len(bad)
	e.note(fmt.Sprintf("resend in another partition: %d committed records sent again to the central as their agent's "+
		"service account, without their event time and with a receivedAt in another day's partition, and %d as they "+
		"were (their own partition): %d of %d answered duplicate; at the end %d of them not stored once and unchanged",
		r.OtherPartition, r.SamePartition, r.Duplicate, r.OtherPartition+r.SamePartition, r.Changed))
	for _, b := range bad {
		e.note("resent record: " + b)
	}
	return nil
}
