package storage

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/wire"
)

// The ledger (migration 0009, package ledger, SCHEMA.md "Ledger"): a
// transaction takes a batch number (nextBatch) for each writer whose rows
// it stores, stores it with those rows, and stores one pending entry per
// batch before it commits; SequenceLedger chains the committed entries;
// VerifyLedger checks the chain and the rows.

// nextBatch starts a writer's batch in a transaction: the rows it stores
// carry it as their ledger_batch (COPY sends it; the inserts and a folded
// entry read it back with currval, the session's last nextval, in the
// statement that follows it).
const nextBatch = `SELECT nextval('audit_ledger_batch')`

// insertEntry stores an entry in the writing transaction, with the batch
// nextBatch took for its rows (a transaction may hold several writers'
// rows, each with its batch: WriteGroups).
const insertEntry = `INSERT INTO audit_ledger (batch, digest, service_account, written_at, rows,
    prune_kind, prune_from, prune_to, prune_head_seq, prune_head_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// RetentionWriter is the writer named by the anchor entries retention
// writes.
const RetentionWriter = "datastorage:retention"

// queueEntry queues the insert of e, pending, as batch's entry.
func queueEntry(b *pgx.Batch, batch int64, e *ledger.Entry) {
	var pruneKind, pruneFrom, pruneTo, pruneSeq, pruneHash any
	if p := e.Prune; p != nil {
		pruneKind, pruneTo, pruneSeq, pruneHash = p.Kind, p.To, p.HeadSeq, p.HeadHash[:]
		if !p.From.IsZero() {
			pruneFrom = p.From
		}
	}
	b.Queue(insertEntry, batch, e.Digest[:], e.Writer, e.WrittenAt, e.EncodeRows(),
		pruneKind, pruneFrom, pruneTo, pruneSeq, pruneHash)
}

// newEntry is the entry of a transaction that stored the rows of rem and wf
// that stored admits (nil: all of them). Their leaves were computed
// beforehand (computeLeaves), outside the transaction.
func newEntry(sa string, rem *remediationRows, wf *workflowRows, remStored, wfStored map[string]struct{}) *ledger.Entry {
	e := &ledger.Entry{Writer: sa, WrittenAt: time.Now().Truncate(time.Microsecond)}
	for i, id := range rem.id {
		if _, ok := remStored[id]; remStored == nil || ok {
			e.Remediation = append(e.Remediation, ledger.Row{ID: id, EventTime: rem.createdAt[i], Leaf: rem.leaves[i]})
		}
	}
	for i, id := range wf.id {
		if _, ok := wfStored[id]; wfStored == nil || ok {
			e.Workflow = append(e.Workflow, ledger.Row{ID: id, EventTime: wf.executedAt[i], Leaf: wf.leaves[i]})
		}
	}
	e.SortRows()
	e.Digest = e.ComputeDigest()
	return e
}

// computeLeaves computes every row's leaf.
func computeLeaves(sa string, rem *remediationRows, wf *workflowRows) {
	var enc ledger.RowEncoder
	rem.leaves = make([]ledger.Leaf, rem.len())
	for i := range rem.leaves {
		rem.leaves[i] = enc.Remediation(rem.row(i, sa))
	}
	wf.leaves = make([]ledger.Leaf, wf.len())
	for i := range wf.leaves {
		wf.leaves[i] = enc.Workflow(wf.row(i, sa))
	}
}

// row is row i as stored (ledger.RemediationRow), for its leaf.
func (r *remediationRows) row(i int, sa string) *ledger.RemediationRow {
	return &ledger.RemediationRow{ID: r.id[i], RemediationRequestID: r.remediationRequestID[i],
		AlertName: r.alertName[i], Namespace: r.namespace[i], Cluster: r.cluster[i], Priority: r.priority[i],
		ActionType: r.actionType[i], Status: r.status[i],
		Confidence: r.confidence[i].Float64, HasConfidence: r.confidence[i].Valid,
		Reasoning: r.reasoning[i], Target: r.targetResource[i],
		DurationMs: r.durationMs[i].Int32, HasDuration: r.durationMs[i].Valid, ErrorMessage: r.errorMessage[i],
		CreatedAt: r.createdAt[i], ExecutedAt: r.executedAt[i].Time, HasExecutedAt: r.executedAt[i].Valid,
		Writer: sa, ReceivedAt: r.receivedAt[i]}
}

// row is row i as stored (ledger.WorkflowRow), for its leaf.
func (r *workflowRows) row(i int, sa string) *ledger.WorkflowRow {
	return &ledger.WorkflowRow{ID: r.id[i], WorkflowID: r.workflowID[i], StepName: r.stepName[i],
		StepStatus: r.stepStatus[i], DurationMs: r.durationMs[i].Int32, HasDuration: r.durationMs[i].Valid,
		ErrorMessage: r.errorMessage[i], ExecutedAt: r.executedAt[i], Writer: sa, ReceivedAt: r.receivedAt[i]}
}

// ledgerLock serializes sequencing across central replicas.
const ledgerLock = `SELECT pg_advisory_xact_lock(hashtext('datastorage.ledger'))`

// sequenceBatch bounds the entries one sequencing transaction takes.
const sequenceBatch = 5000

// Head is the newest sequenced entry.
type Head struct {
	Seq  int64
	Hash ledger.Hash
}

// SequenceLedger gives the committed pending entries their sequence numbers
// and chain hashes, in batch order, and returns how many it sequenced and
// the head after. Any number of replicas may run it at once: they take
// turns under an advisory lock, and a sequencing that fails or dies leaves
// nothing behind (one transaction), so the sequence has no gap and no fork.
func (db *DB) SequenceLedger(ctx context.Context) (int, Head, error) {
	const op = "storage: sequence ledger"
	var (
		total int
		head  Head
	)
	for {
		n := 0
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			n = 0
			if _, err := tx.Exec(ctx, ledgerLock); err != nil {
				return err
			}
			var err error
			if head, err = readHead(ctx, tx); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT batch, digest FROM audit_ledger WHERE seq IS NULL ORDER BY batch LIMIT $1`, sequenceBatch)
			if err != nil {
				return err
			}
			var (
				batches, seqs []int64
				hashes        [][]byte
				batch         int64
				digest        []byte
			)
			_, err = pgx.ForEachRow(rows, []any{&batch, &digest}, func() error {
				if len(digest) != len(ledger.Hash{}) {
					return fmt.Errorf("entry of batch %d: digest of %d bytes", batch, len(digest))
				}
				head.Seq++
				head.Hash = ledger.ChainHash(head.Hash, head.Seq, ledger.Hash(digest))
				batches, seqs, hashes = append(batches, batch), append(seqs, head.Seq), append(hashes, append([]byte(nil), head.Hash[:]...))
				return nil
			})
			if err != nil || len(batches) == 0 {
				return err
			}
			n = len(batches)
			_, err = tx.Exec(ctx, `UPDATE audit_ledger l SET seq = u.seq, hash = u.hash
				FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(batch, seq, hash) WHERE l.batch = u.batch AND l.seq IS NULL`,
				batches, seqs, hashes)
			return err
		})
		if err != nil {
			return total, head, wrapErr(op, err)
		}
		total += n
		if n < sequenceBatch {
			return total, head, nil
		}
	}
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readHead(ctx context.Context, q querier) (Head, error) {
	var (
		h    Head
		hash []byte
	)
	if err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_ledger WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &hash); err != nil {
		return h, fmt.Errorf("ledger head: %w", err)
	}
	copy(h.Hash[:], hash)
	return h, nil
}

// LedgerHead returns the newest sequenced entry.
func (db *DB) LedgerHead(ctx context.Context) (Head, error) {
	h, err := readHead(ctx, db.pool)
	if err != nil {
		return h, wrapErr("storage: ledger head", err)
	}
	return h, nil
}

// LedgerPending counts the entries not sequenced yet.
func (db *DB) LedgerPending(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM audit_ledger WHERE seq IS NULL`).Scan(&n); err != nil {
		return 0, wrapErr("storage: ledger pending", err)
	}
	return n, nil
}

// SaveCheckpoint keeps a copy of c in the database (ledger_checkpoints).
func (db *DB) SaveCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	if _, err := db.pool.Exec(ctx, `INSERT INTO ledger_checkpoints (seq, hash, signed_at, key_id, signature)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, c.Seq, c.Hash[:], c.Time, c.KeyID, c.Signature); err != nil {
		return wrapErr("storage: save checkpoint", err)
	}
	return nil
}

// Checkpoints returns the checkpoints kept in the database whose signature
// pub accepts; others (another key's, or forged) are left out.
func (db *DB) Checkpoints(ctx context.Context, pub ed25519.PublicKey) ([]ledger.Checkpoint, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, hash, signed_at, key_id, signature FROM ledger_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, wrapErr("storage: checkpoints", err)
	}
	var (
		cps       []ledger.Checkpoint
		c         ledger.Checkpoint
		hash, sig []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&c.Seq, &hash, &c.Time, &c.KeyID, &sig}, func() error {
		copy(c.Hash[:], hash)
		c.Signature = append([]byte(nil), sig...)
		c.Time = c.Time.UTC()
		if c.Verify(pub) == nil {
			cps = append(cps, c)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("storage: checkpoints", err)
	}
	return cps, nil
}

// anchorDrop writes, in the transaction that dropped p, the anchor entry
// that says so (ledger.Prune).
func anchorDrop(ctx context.Context, tx pgx.Tx, p Partition) error {
	head, err := readHead(ctx, tx)
	if err != nil {
		return err
	}
	var batch int64
	if err := tx.QueryRow(ctx, nextBatch).Scan(&batch); err != nil {
		return err
	}
	e := &ledger.Entry{Writer: RetentionWriter, WrittenAt: time.Now().Truncate(time.Microsecond),
		Prune: &ledger.Prune{Kind: string(p.Kind), From: p.From, To: p.To, HeadSeq: head.Seq, HeadHash: head.Hash}}
	e.Digest = e.ComputeDigest()
	b := &pgx.Batch{}
	queueEntry(b, batch, e)
	return tx.SendBatch(ctx, b).Close()
}

// LedgerProof writes, through emit, the proof of an export whose rows
// carried batches (package ledger, export.go): the chain's start before the
// first of their entries, then every entry from there to the head, whole
// when it is one of batches', by its digest otherwise. It sequences the
// ledger first, so that the entries of rows committed before the export's
// snapshot are in the chain; their content cannot change since (the guard).
// It returns the head the proof reaches, for the checkpoint that ends it.
// Memory: 48 bytes per entry from the first to the head.
func (db *DB) LedgerProof(ctx context.Context, batches map[int64]struct{}, emit func(ledger.ProofLine) error) (Head, error) {
	const op = "storage: ledger proof"
	_, head, err := db.SequenceLedger(ctx)
	if err != nil {
		return head, err
	}
	list := make([]int64, 0, len(batches))
	for b := range batches {
		list = append(list, b)
	}
	var first *int64
	if err := db.pool.QueryRow(ctx, `SELECT min(seq) FROM audit_ledger WHERE batch = ANY($1) AND seq IS NOT NULL`,
		list).Scan(&first); err != nil {
		return head, wrapErr(op, err)
	}
	if first == nil {
		return head, fmt.Errorf("%s: no sequenced entry for the export's rows", op)
	}
	var start []byte
	if err := db.pool.QueryRow(ctx, `SELECT hash FROM audit_ledger WHERE seq = $1`, *first-1).Scan(&start); err != nil {
		return head, wrapErr(op, err)
	}
	// Which entries are whole: their digests first, then the whole ones'
	// content, merged in sequence order.
	type link struct {
		digest ledger.Hash
		whole  bool
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, batch, digest FROM audit_ledger WHERE seq BETWEEN $1 AND $2 ORDER BY seq`,
		*first, head.Seq)
	if err != nil {
		return head, wrapErr(op, err)
	}
	var (
		links      []link
		wholeSeqs  []int64
		seq, batch int64
		digest     []byte
	)
	if _, err := pgx.ForEachRow(rows, []any{&seq, &batch, &digest}, func() error {
		if seq != *first+int64(len(links)) {
			return fmt.Errorf("entry %d is missing", *first+int64(len(links)))
		}
		_, whole := batches[batch]
		links = append(links, link{digest: ledger.Hash(digest), whole: whole})
		if whole {
			wholeSeqs = append(wholeSeqs, seq)
		}
		return nil
	}); err != nil {
		return head, wrapErr(op, err)
	}
	if err := emit(ledger.ProofLine{Start: &ledger.ProofStart{Seq: *first - 1, Hash: ledger.HexHash(start)}}); err != nil {
		return head, err
	}
	whole, err := db.pool.Query(ctx, `SELECT seq, service_account, written_at, rows FROM audit_ledger
		WHERE seq = ANY($1) ORDER BY seq`, wholeSeqs)
	if err != nil {
		return head, wrapErr(op, err)
	}
	defer whole.Close()
	for i, l := range links {
		p := &ledger.ProofEntry{Seq: *first + int64(i)}
		if l.whole {
			var writtenAt time.Time
			if !whole.Next() {
				return head, wrapErr(op, fmt.Errorf("entry %d: %w", p.Seq, orMissing(whole.Err())))
			}
			if err := whole.Scan(&seq, &p.Writer, &writtenAt, &p.Rows); err != nil {
				return head, wrapErr(op, err)
			}
			if seq != p.Seq {
				return head, fmt.Errorf("%s: entry %d where %d is due", op, seq, p.Seq)
			}
			p.WrittenAt = &writtenAt
		} else {
			d := ledger.HexHash(l.digest)
			p.Digest = &d
		}
		if err := emit(ledger.ProofLine{Entry: p}); err != nil {
			return head, err
		}
	}
	return head, nil
}

// orMissing is err, or, when there was none, that a row is missing.
func orMissing(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not found")
}

// VerifyOptions says what VerifyLedger checks.
type VerifyOptions struct {
	// From and Through bound the entries verified; Through zero: the head.
	// A range that does not start at 0 trusts the stored hash of entry
	// From-1, and checks only the partitions its rows' event times fall
	// in: rows written outside the central elsewhere are for a full
	// verification to find.
	From, Through int64
	// Checkpoints, signatures already checked, are held against the chain.
	Checkpoints []ledger.Checkpoint
	// PendingAge is how long an entry may stay unsequenced. Zero: a minute.
	PendingAge time.Duration
}

// VerifyLedger recomputes the chain over a range of entries and the leaf
// of every row in the partitions they stored rows in, in one snapshot, and
// reports what does not match (package ledger names each problem).
func (db *DB) VerifyLedger(ctx context.Context, opts VerifyOptions) (*ledger.Report, error) {
	const op = "storage: verify ledger"
	if opts.From < 0 || opts.Through < 0 || (opts.Through > 0 && opts.Through < opts.From) {
		return nil, fmt.Errorf("%s: bad range %d..%d", op, opts.From, opts.Through)
	}
	if opts.PendingAge == 0 {
		opts.PendingAge = time.Minute
	}
	var report *ledger.Report
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Retention cannot detach a partition under the scan.
		if _, err := tx.Exec(ctx, `LOCK TABLE remediation_audit, workflow_audit IN ACCESS SHARE MODE`); err != nil {
			return err
		}
		head, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		through := opts.Through
		if through == 0 || through > head.Seq {
			through = head.Seq
		}
		var prev ledger.Hash
		if opts.From > 0 {
			var h []byte
			if err := tx.QueryRow(ctx, `SELECT hash FROM audit_ledger WHERE seq = $1`, opts.From-1).Scan(&h); err != nil {
				return fmt.Errorf("entry %d, where the range starts: %w", opts.From-1, err)
			}
			copy(prev[:], h)
		}
		v := ledger.NewVerifier(opts.From, prev, opts.Checkpoints, opts.PendingAge, time.Now())
		bounds, err := streamEntries(ctx, tx, v, opts.From, through)
		if err != nil {
			return err
		}
		full := opts.From == 0 && through == head.Seq
		if !full {
			if err := streamKnown(ctx, tx, v, opts.From, through); err != nil {
				return err
			}
		}
		for _, t := range partitioned {
			parts, err := listPartitions(ctx, tx, t)
			if err != nil {
				return err
			}
			for _, p := range parts {
				if full || bounds[t.kind].overlaps(p) {
					if err := streamRows(ctx, tx, v, t, p); err != nil {
						return err
					}
				}
			}
			if full {
				if err := checkLegacy(ctx, tx, v, t); err != nil {
					return err
				}
			}
		}
		report = v.Finish(head.Seq, head.Hash)
		return nil
	})
	if err != nil {
		return nil, wrapErr(op, err)
	}
	return report, nil
}

// timeSpan is the event times of a range's rows of one kind.
type timeSpan struct {
	min, max time.Time
	any      bool
}

func (s *timeSpan) add(t time.Time) {
	if !s.any || t.Before(s.min) {
		s.min = t
	}
	if !s.any || t.After(s.max) {
		s.max = t
	}
	s.any = true
}

func (s timeSpan) overlaps(p Partition) bool {
	return s.any && (p.From.IsZero() || !s.max.Before(p.From)) && s.min.Before(p.To)
}

const entryColumns = `batch, seq, hash, digest, service_account, written_at, rows,
    prune_kind, prune_from, prune_to, prune_head_seq, prune_head_hash`

// streamEntries feeds the verifier the range's entries, the pending ones
// and the anchors outside the range, and returns the event times of the
// range's rows.
func streamEntries(ctx context.Context, tx pgx.Tx, v *ledger.Verifier, from, through int64) (map[wire.Kind]*timeSpan, error) {
	bounds := map[wire.Kind]*timeSpan{wire.KindRemediation: {}, wire.KindWorkflow: {}}
	rows, err := tx.Query(ctx, `SELECT `+entryColumns+` FROM audit_ledger
		WHERE (seq BETWEEN $1 AND $2) OR seq IS NULL OR (prune_kind IS NOT NULL AND seq NOT BETWEEN $1 AND $2)
		ORDER BY seq NULLS LAST`, from, through)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		switch {
		case e.Seq < 0:
			v.Pending(e)
		case e.Seq < from || e.Seq > through:
			v.Anchor(ledger.Anchor{Seq: e.Seq, Prune: *e.Prune})
		default:
			v.Entry(e)
			for _, r := range e.Remediation {
				bounds[wire.KindRemediation].add(r.EventTime)
			}
			for _, r := range e.Workflow {
				bounds[wire.KindWorkflow].add(r.EventTime)
			}
		}
	}
	return bounds, rows.Err()
}

// scanEntry reads one row of entryColumns; a pending entry has Seq -1. Rows
// that do not decode (a tampered entry) are left out: the digest tells.
func scanEntry(rows pgx.Rows) (*ledger.Entry, error) {
	var (
		e                  ledger.Entry
		seq                *int64
		hash, digest, data []byte
		pruneKind          *string
		pruneFrom, pruneTo *time.Time
		pruneSeq           *int64
		pruneHash          []byte
	)
	if err := rows.Scan(&e.Batch, &seq, &hash, &digest, &e.Writer, &e.WrittenAt, &data,
		&pruneKind, &pruneFrom, &pruneTo, &pruneSeq, &pruneHash); err != nil {
		return nil, err
	}
	e.Seq = -1
	if seq != nil {
		e.Seq = *seq
	}
	copy(e.Hash[:], hash)
	copy(e.Digest[:], digest)
	if err := e.DecodeRows(data); err != nil {
		e.Remediation, e.Workflow = nil, nil
	}
	if pruneKind != nil {
		e.Prune = &ledger.Prune{Kind: *pruneKind}
		if pruneFrom != nil {
			e.Prune.From = *pruneFrom
		}
		if pruneTo != nil {
			e.Prune.To = *pruneTo
		}
		if pruneSeq != nil {
			e.Prune.HeadSeq = *pruneSeq
		}
		copy(e.Prune.HeadHash[:], pruneHash)
	}
	return &e, nil
}

// streamKnown tells the verifier the batches of the entries outside the
// range.
func streamKnown(ctx context.Context, tx pgx.Tx, v *ledger.Verifier, from, through int64) error {
	rows, err := tx.Query(ctx, `SELECT batch, seq FROM audit_ledger WHERE seq < $1 OR seq > $2`, from, through)
	if err != nil {
		return err
	}
	var batch, seq int64
	_, err = pgx.ForEachRow(rows, []any{&batch, &seq}, func() error {
		v.Known(batch, seq)
		return nil
	})
	return err
}

// ledgerColumns are the columns a leaf covers, in its order, per table.
var ledgerColumns = map[wire.Kind][]string{
	wire.KindRemediation: remediationColumns,
	wire.KindWorkflow:    workflowColumns,
}

// streamRows recomputes the leaf of every row of partition p, read in
// PostgreSQL's binary format as it is.
func streamRows(ctx context.Context, tx pgx.Tx, v *ledger.Verifier, t *auditTable, p Partition) error {
	cols := ledgerColumns[t.kind]
	list := "ledger_batch"
	idCol, saCol, timeCol := -1, -1, -1
	for i, c := range cols {
		list += ", " + pgx.Identifier{c}.Sanitize()
		switch c {
		case "id":
			idCol = i
		case "service_account":
			saCol = i
		case t.eventTime:
			timeCol = i
		}
	}
	kind := ledger.KindRemediation
	if t.kind == wire.KindWorkflow {
		kind = ledger.KindWorkflow
	}
	rows, err := tx.Query(ctx, `SELECT `+list+` FROM ONLY `+pgx.Identifier{p.Name}.Sanitize(),
		pgx.QueryResultFormats{pgx.BinaryFormatCode})
	if err != nil {
		return err
	}
	defer rows.Close()
	var enc ledger.RowEncoder
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != len(cols)+1 || len(raw[0]) != 8 || len(raw[1+timeCol]) != 8 {
			return fmt.Errorf("%s: unexpected row shape", p.Name)
		}
		batch := int64(binary.BigEndian.Uint64(raw[0]))
		enc.Reset(kind)
		for _, c := range raw[1:] {
			enc.Raw(c)
		}
		eventTime := ledger.FromMicros(int64(binary.BigEndian.Uint64(raw[1+timeCol])))
		v.Row(kind, batch, string(raw[1+idCol]), string(raw[1+saCol]), eventTime, enc.Sum())
	}
	return rows.Err()
}

// checkLegacy holds the rows without a batch the verifier counted against
// ledger_legacy.
func checkLegacy(ctx context.Context, tx pgx.Tx, v *ledger.Verifier, t *auditTable) error {
	var atStart int64
	err := tx.QueryRow(ctx, `SELECT coalesce((SELECT row_count FROM ledger_legacy WHERE kind = $1), 0)`,
		string(t.kind)).Scan(&atStart)
	if err != nil {
		return err
	}
	v.Legacy(string(t.kind), atStart)
	return nil
}
