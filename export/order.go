package export

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// The rules of this file are the format's, beyond the bytes: what a record
// line must hold, the order records come in, and their agreement with the
// trailer. The Writer refuses to break them and Verify checks them, with the
// same code, so that whatever a Writer writes verifies.

// problem is a broken rule and the line it shows on.
type problem struct {
	line int64
	msg  string
}

// checkEntry says why e is not a record an export carries; "" when it is.
func checkEntry(e *wire.AuditEntry) string {
	switch {
	case e.Kind != wire.KindRemediation && e.Kind != wire.KindWorkflow:
		return fmt.Sprintf("kind %q is not remediation or workflow", e.Kind)
	case e.Kind == wire.KindRemediation && (e.Remediation == nil || e.Workflow != nil):
		return "a remediation record needs a remediation member and no workflow member"
	case e.Kind == wire.KindWorkflow && (e.Workflow == nil || e.Remediation != nil):
		return "a workflow record needs a workflow member and no remediation member"
	case e.AuditID == "":
		return "auditID is empty"
	case e.ServiceAccount == "":
		return "serviceAccount is empty"
	case e.OccurredAt.IsZero():
		return "occurredAt is missing"
	}
	return ""
}

// order follows the records of an export line by line, in constant memory:
// the records of each kind form one run and, within it, occurredAt never
// decreases (storage exports each kind by (event time, writer, ID)). It
// keeps the first record that breaks this, the runs and the range of
// occurredAt, which against then compares with the trailer.
type order struct {
	n    int64 // records seen
	runs []run // one per kind, in the order they began (at most two)
	// The previous record. Its strings are copied: a caller may reuse the
	// entry, and the memory behind its strings, for the next record.
	prevKind         wire.Kind
	prevAt           time.Time
	prevSA, prevID   []byte
	min, max         time.Time
	minLine, maxLine int64
	first            *problem // the first record out of order
}

type run struct {
	kind wire.Kind
	line int64 // its first record's line
}

// check returns the rule the record on line (checked by checkEntry) breaks,
// or nil. It changes nothing: take does.
func (o *order) check(line int64, e *wire.AuditEntry) *problem {
	switch {
	case o.n == 0 || e.Kind != o.prevKind:
		if i := slices.IndexFunc(o.runs, func(r run) bool { return r.kind == e.Kind }); i >= 0 {
			return &problem{line, fmt.Sprintf("line %d: a %s record after %s records, but the %s records began at line %d"+
				" (the records of a kind are contiguous)", line, e.Kind, o.prevKind, e.Kind, o.runs[i].line)}
		}
	case e.OccurredAt.Before(o.prevAt):
		return &problem{line, fmt.Sprintf("line %d: occurredAt %s is before line %d's %s (the records of a kind are in event-time order)",
			line, stamp(e.OccurredAt), line-1, stamp(o.prevAt))}
	case string(o.prevSA) == e.ServiceAccount && string(o.prevID) == e.AuditID:
		return &problem{line, fmt.Sprintf("line %d repeats the record of line %d (%s %s of %s)",
			line, line-1, e.Kind, e.AuditID, e.ServiceAccount)}
	}
	return nil
}

// take makes the record on line the previous one.
func (o *order) take(line int64, e *wire.AuditEntry) {
	if o.n == 0 || e.Kind != o.prevKind {
		if !slices.ContainsFunc(o.runs, func(r run) bool { return r.kind == e.Kind }) {
			o.runs = append(o.runs, run{e.Kind, line})
		}
	}
	o.prevKind, o.prevAt = e.Kind, e.OccurredAt
	o.prevSA, o.prevID = append(o.prevSA[:0], e.ServiceAccount...), append(o.prevID[:0], e.AuditID...)
	if o.n == 0 || e.OccurredAt.Before(o.min) {
		o.min, o.minLine = e.OccurredAt, line
	}
	if o.n == 0 || e.OccurredAt.After(o.max) {
		o.max, o.maxLine = e.OccurredAt, line
	}
	o.n++
}

// add is check and take, keeping the first problem: Verify's way, which
// reads on past a problem to find out what else is wrong.
func (o *order) add(line int64, e *wire.AuditEntry) {
	if p := o.check(line, e); p != nil && o.first == nil {
		o.first = p
	}
	o.take(line, e)
}

// against returns the earliest line's problem among the first record out
// of order and the records that disagree with t: a kind t does not name, or
// names in another order, an occurredAt outside [since, until). Nil: none.
func (o *order) against(t *Trailer) *problem {
	var ps []*problem
	if o.first != nil {
		ps = append(ps, o.first)
	}
	prev := -1
	for _, r := range o.runs {
		switch i := slices.Index(t.Kinds, r.kind); {
		case i < 0:
			ps = append(ps, &problem{r.line, fmt.Sprintf("line %d: a %s record, but the trailer's kinds are %v", r.line, r.kind, t.Kinds)})
		case i < prev:
			ps = append(ps, &problem{r.line, fmt.Sprintf("line %d: %s records come after %s records, but the trailer's kinds are in the order %v",
				r.line, r.kind, t.Kinds[prev], t.Kinds)})
		default:
			prev = i
		}
	}
	if o.n > 0 && t.Since != nil && o.min.Before(*t.Since) {
		ps = append(ps, &problem{o.minLine, fmt.Sprintf("line %d: occurredAt %s is before the trailer's since %s",
			o.minLine, stamp(o.min), stamp(*t.Since))})
	}
	if o.n > 0 && !o.max.Before(t.Until) {
		ps = append(ps, &problem{o.maxLine, fmt.Sprintf("line %d: occurredAt %s is not before the trailer's until %s",
			o.maxLine, stamp(o.max), stamp(t.Until))})
	}
	if len(ps) == 0 {
		return nil
	}
	return slices.MinFunc(ps, func(a, b *problem) int { return cmp.Compare(a.line, b.line) })
}

func stamp(t time.Time) string { return t.Format(time.RFC3339Nano) }
