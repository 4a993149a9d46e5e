package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Problems the verifier reports, one per kind of tampering it tells apart.
const (
	ProblemChanged    = "changed"    // a row's content differs from its leaf
	ProblemDeleted    = "deleted"    // a row an entry recorded is gone, and no anchor pruned it
	ProblemInserted   = "inserted"   // a row no entry recorded: written outside the central
	ProblemReinserted = "reinserted" // a row in a range retention pruned
	ProblemEntry      = "entry"      // an entry's content differs from its digest
	ProblemChain      = "chain"      // an entry's hash does not follow from the one before: changed, reordered or inserted
	ProblemGap        = "gap"        // a sequence number is missing
	ProblemTruncated  = "truncated"  // the ledger ends before a checkpoint: entries deleted from the end, or an old backup restored
	ProblemFork       = "fork"       // the ledger's hash at a checkpoint's sequence differs: history rewritten, or another backup restored
	ProblemPending    = "pending"    // an entry left unsequenced for too long
	ProblemLegacy     = "legacy"     // more rows claim to predate the ledger than existed when it started
)

// Failure is one finding. Seq is the entry concerned (0 when none can be
// named: a row that claims no entry); Record, Kind and Writer name the row
// when the finding is about one.
type Failure struct {
	Problem string `json:"problem"`
	Seq     int64  `json:"seq"`
	Kind    string `json:"kind,omitempty"`
	Record  string `json:"record,omitempty"`
	Writer  string `json:"writer,omitempty"`
	Detail  string `json:"detail"`
}

func (f Failure) String() string {
	s := fmt.Sprintf("%s at seq %d", f.Problem, f.Seq)
	if f.Record != "" {
		s += fmt.Sprintf(", %s record %s of %s", f.Kind, f.Record, f.Writer)
	}
	return s + ": " + f.Detail
}

// Report is the outcome of a verification.
type Report struct {
	From        int64   `json:"from"`    // the entries verified: from…
	Through     int64   `json:"through"` // …through
	HeadSeq     int64   `json:"headSeq"` // the newest sequenced entry
	HeadHash    HexHash `json:"headHash"`
	Entries     int64   `json:"entries"`     // entries verified
	Rows        int64   `json:"rows"`        // rows whose leaf matched
	Pruned      int64   `json:"pruned"`      // rows recorded, gone with a partition retention dropped
	Pending     int64   `json:"pending"`     // rows of entries not sequenced yet (skipped)
	Legacy      int64   `json:"legacy"`      // rows written before the ledger existed (not covered)
	Checkpoints int     `json:"checkpoints"` // checkpoints held against the chain
	// Failures lists the first MaxFailures, by sequence; FailuresTotal
	// counts them all.
	Failures      []Failure `json:"failures"`
	FailuresTotal int       `json:"failuresTotal"`
}

// OK reports whether nothing failed.
func (r *Report) OK() bool { return r.FailuresTotal == 0 }

// MaxFailures bounds the failures a report lists.
const MaxFailures = 100

// entryState is an entry under verification: which of its rows were seen.
type entryState struct {
	*Entry
	seenRem, seenWf []bool
}

// Verifier checks a range of the chain and the rows its entries recorded.
// Feed it, in this order: Entry for each entry of the range in sequence
// order (and Pending, Anchor, Known for what lies outside it), then Row for
// every row of the partitions that may hold the range's rows, then Finish.
// Memory: the range's entries with their rows (about 100 bytes a row).
type Verifier struct {
	prev        Hash
	next        int64
	byBatch     map[int64]*entryState
	bySeq       []*entryState
	pending     map[int64]*Entry
	known       map[int64]int64 // batch → seq of entries outside the range
	anchors     []Anchor
	checkpoints map[int64][]Checkpoint
	legacy      map[string]int64 // rows of batch 0, per kind
	pendingAge  time.Duration
	now         time.Time
	report      Report
}

// Anchor is a Prune with the sequence of its entry.
type Anchor struct {
	Seq int64
	Prune
}

// NewVerifier verifies from entry from (its predecessor's hash is prev; from
// 0: the genesis entry, prev ignored) against checkpoints (signatures
// already checked). A pending entry older than pendingAge at now is a
// failure: the sequencer takes them within a second while a central runs.
func NewVerifier(from int64, prev Hash, checkpoints []Checkpoint, pendingAge time.Duration, now time.Time) *Verifier {
	v := &Verifier{
		prev: prev, next: from,
		byBatch: map[int64]*entryState{}, pending: map[int64]*Entry{}, known: map[int64]int64{},
		checkpoints: map[int64][]Checkpoint{}, legacy: map[string]int64{}, pendingAge: pendingAge, now: now,
	}
	for _, c := range checkpoints {
		v.checkpoints[c.Seq] = append(v.checkpoints[c.Seq], c)
	}
	v.report.From = from
	v.report.Through = from - 1
	return v
}

func (v *Verifier) fail(f Failure) {
	v.report.FailuresTotal++
	// Kept up to a bound (a dropped table would be millions): the report
	// lists the first MaxFailures by sequence among them.
	if len(v.report.Failures) < 100*MaxFailures {
		v.report.Failures = append(v.report.Failures, f)
	}
}

// Entry takes the next entry of the range.
func (v *Verifier) Entry(e *Entry) {
	if e.Seq != v.next {
		v.fail(Failure{Problem: ProblemGap, Seq: v.next,
			Detail: fmt.Sprintf("entries %d to %d are missing (the next entry is %d)", v.next, e.Seq-1, e.Seq)})
	}
	v.next = e.Seq + 1
	v.report.Through = e.Seq
	v.report.Entries++
	if e.Seq == 0 {
		v.prev = Genesis
		if e.Hash != Genesis || e.Batch != 0 || len(e.Remediation)+len(e.Workflow) > 0 || e.Prune != nil {
			v.fail(Failure{Problem: ProblemEntry, Seq: 0, Detail: "the genesis entry is not the one migration 0009 wrote"})
		}
		v.checkCheckpoints(e.Seq, Genesis)
		return
	}
	if e.ComputeDigest() != e.Digest {
		v.fail(Failure{Problem: ProblemEntry, Seq: e.Seq, Writer: e.Writer,
			Detail: fmt.Sprintf("the entry of batch %d does not match its digest: its rows, writer, time or anchor were changed", e.Batch)})
	}
	// Each link is checked on its own (the stored hash of the entry before,
	// this entry's stored digest), so that a changed entry is reported once
	// and not again at every later one.
	if ChainHash(v.prev, e.Seq, e.Digest) != e.Hash {
		v.fail(Failure{Problem: ProblemChain, Seq: e.Seq, Writer: e.Writer,
			Detail: fmt.Sprintf("the entry's hash does not follow from entry %d: entries reordered, replaced or inserted", e.Seq-1)})
	}
	v.prev = e.Hash
	v.checkCheckpoints(e.Seq, e.Hash)
	if e.Prune != nil {
		v.anchors = append(v.anchors, Anchor{Seq: e.Seq, Prune: *e.Prune})
	}
	if other := v.byBatch[e.Batch]; other != nil {
		v.fail(Failure{Problem: ProblemEntry, Seq: e.Seq, Writer: e.Writer,
			Detail: fmt.Sprintf("entry %d claims batch %d, which entry %d has: one was inserted outside the central", e.Seq, e.Batch, other.Seq)})
		return
	}
	s := &entryState{Entry: e, seenRem: make([]bool, len(e.Remediation)), seenWf: make([]bool, len(e.Workflow))}
	v.byBatch[e.Batch] = s
	v.bySeq = append(v.bySeq, s)
}

func (v *Verifier) checkCheckpoints(seq int64, h Hash) {
	for _, c := range v.checkpoints[seq] {
		v.report.Checkpoints++
		if Hash(c.Hash) != h {
			v.fail(Failure{Problem: ProblemFork, Seq: seq, Detail: fmt.Sprintf(
				"checkpoint signed %s says entry %d hashes to %s; the ledger gives %s: history rewritten, or the database restored from another backup",
				c.Time.Format(time.RFC3339), seq, c.Hash, HexHash(h))})
		}
	}
	delete(v.checkpoints, seq)
}

// Pending takes an entry not sequenced yet: its rows are skipped.
func (v *Verifier) Pending(e *Entry) {
	v.pending[e.Batch] = e
	if age := v.now.Sub(e.WrittenAt); age > v.pendingAge {
		v.fail(Failure{Problem: ProblemPending, Seq: 0, Writer: e.Writer, Detail: fmt.Sprintf(
			"the entry of batch %d, written %s ago, has no place in the chain: written outside the central, or no central is running",
			e.Batch, age.Round(time.Second))})
	}
}

// Anchor takes an anchor outside the range (one inside comes with its
// entry).
func (v *Verifier) Anchor(a Anchor) { v.anchors = append(v.anchors, a) }

// Known takes the batch of a sequenced entry outside the range: its rows
// are not this verification's to check.
func (v *Verifier) Known(batch, seq int64) { v.known[batch] = seq }

func kindName(kind byte) string {
	if kind == KindRemediation {
		return "remediation"
	}
	return "workflow"
}

func (v *Verifier) pruned(kind string, t time.Time) *Anchor {
	for i := range v.anchors {
		if v.anchors[i].Covers(kind, t) {
			return &v.anchors[i]
		}
	}
	return nil
}

// Row takes one stored row: its kind, the batch it names, its ID, writer
// and event time, and the leaf recomputed from its columns. Rows of batch 0
// predate the ledger (see Legacy).
func (v *Verifier) Row(kind byte, batch int64, id, writer string, eventTime time.Time, leaf Leaf) {
	name := kindName(kind)
	if a := v.pruned(name, eventTime); a != nil {
		v.fail(Failure{Problem: ProblemReinserted, Seq: a.Seq, Kind: name, Record: id, Writer: writer, Detail: fmt.Sprintf(
			"the row's event time %s lies in the range retention pruned at entry %d: put back after the drop",
			eventTime.Format(time.RFC3339Nano), a.Seq)})
		return
	}
	if batch == 0 {
		v.report.Legacy++
		v.legacy[name]++
		return
	}
	s := v.byBatch[batch]
	if s == nil {
		if _, ok := v.pending[batch]; ok {
			v.report.Pending++
			return
		}
		if _, ok := v.known[batch]; ok {
			return
		}
		v.fail(Failure{Problem: ProblemInserted, Seq: 0, Kind: name, Record: id, Writer: writer, Detail: fmt.Sprintf(
			"the row names batch %d, which no ledger entry has: written outside the central", batch)})
		return
	}
	rows, seen := s.Remediation, s.seenRem
	if kind == KindWorkflow {
		rows, seen = s.Workflow, s.seenWf
	}
	i, found := find(rows, id)
	switch {
	case !found || writer != s.Writer:
		v.fail(Failure{Problem: ProblemInserted, Seq: s.Seq, Kind: name, Record: id, Writer: writer, Detail: fmt.Sprintf(
			"entry %d (batch %d, %s) did not store this row: written outside the central", s.Seq, batch, s.Writer)})
	case seen[i]:
		v.fail(Failure{Problem: ProblemInserted, Seq: s.Seq, Kind: name, Record: id, Writer: writer, Detail: fmt.Sprintf(
			"a second copy of a row of entry %d: written outside the central", s.Seq)})
	case rows[i].Leaf != leaf:
		seen[i] = true
		v.fail(Failure{Problem: ProblemChanged, Seq: s.Seq, Kind: name, Record: id, Writer: writer,
			Detail: "the row differs from what entry's leaf recorded: a field was changed"})
	default:
		seen[i] = true
		v.report.Rows++
	}
}

// Legacy checks the rows of kind that predate the ledger, as counted by
// Row, against how many there were when it started (migration 0009 counted
// them); retention may have removed some since, so only more is a failure.
func (v *Verifier) Legacy(kind string, atStart int64) {
	if rows := v.legacy[kind]; rows > atStart {
		v.fail(Failure{Problem: ProblemLegacy, Kind: kind, Detail: fmt.Sprintf(
			"%d %s rows carry no ledger batch, but %d did when the ledger started: rows written outside the central", rows, kind, atStart)})
	}
}

// Finish reports the rows recorded but not seen, and the checkpoints the
// range did not reach, given the chain's head.
func (v *Verifier) Finish(headSeq int64, headHash Hash) *Report {
	for _, s := range v.bySeq {
		for _, k := range []struct {
			kind byte
			rows []Row
			seen []bool
		}{{KindRemediation, s.Remediation, s.seenRem}, {KindWorkflow, s.Workflow, s.seenWf}} {
			name := kindName(k.kind)
			for i, ok := range k.seen {
				if ok {
					continue
				}
				r := &k.rows[i]
				if v.pruned(name, r.EventTime) != nil {
					v.report.Pruned++
					continue
				}
				v.fail(Failure{Problem: ProblemDeleted, Seq: s.Seq, Kind: name, Record: r.ID, Writer: s.Writer, Detail: fmt.Sprintf(
					"entry %d stored this row (event time %s) and it is gone; no retention drop covers it",
					s.Seq, r.EventTime.Format(time.RFC3339Nano))})
			}
		}
	}
	v.report.HeadSeq, v.report.HeadHash = headSeq, HexHash(headHash)
	for seq, cs := range v.checkpoints {
		for _, c := range cs {
			if seq > headSeq {
				v.report.Checkpoints++
				v.fail(Failure{Problem: ProblemTruncated, Seq: seq, Detail: fmt.Sprintf(
					"checkpoint signed %s covers entry %d, but the ledger ends at %d: entries deleted from the newest end, or the database restored from an older backup",
					c.Time.Format(time.RFC3339), seq, headSeq)})
			}
		}
	}
	slices.SortStableFunc(v.report.Failures, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Record, b.Record))
	})
	if len(v.report.Failures) > MaxFailures {
		v.report.Failures = v.report.Failures[:MaxFailures]
	}
	return &v.report
}
