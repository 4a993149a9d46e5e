package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
)

// RawRecord is an accepted record kept as the body its client sent: what the
// agent buffers and forwards, so that a record is decoded once on the way in
// and never re-encoded. Body must have passed DecodeAudit for Kind (the
// central decodes the same bytes again, by the same rules); ID must have
// passed ValidateID (NewID and IDForKey make such IDs).
type RawRecord struct {
	ID         string
	Kind       Kind
	ReceivedAt time.Time
	Body       []byte
}

// AppendItem appends r as one item of the batch format,
// {"id":…,"kind":…,"receivedAt":…,"record":BODY}, to dst; an empty ID or a
// zero ReceivedAt is left out. The ID and kind need no escaping (ValidateID
// allows no quote, backslash or control character) and the body is JSON.
func (r RawRecord) AppendItem(dst []byte) []byte {
	dst = append(dst, '{')
	if r.ID != "" {
		dst = append(dst, `"id":"`...)
		dst = append(dst, r.ID...)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"kind":"`...)
	dst = append(dst, r.Kind...)
	dst = append(dst, '"')
	if !r.ReceivedAt.IsZero() {
		dst = append(dst, `,"receivedAt":"`...)
		dst = r.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"record":`...)
	dst = append(dst, r.Body...)
	return append(dst, '}')
}

// Raw is r with its body encoded as the single-record endpoint takes it.
func (r *Record) Raw() (RawRecord, error) {
	var body any
	switch {
	case r.Kind == KindRemediation && r.Remediation != nil && r.Workflow == nil:
		body = r.Remediation
	case r.Kind == KindWorkflow && r.Workflow != nil && r.Remediation == nil:
		body = r.Workflow
	default:
		return RawRecord{}, fmt.Errorf("record %q: kind %q does not match its body", r.ID, r.Kind)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return RawRecord{}, fmt.Errorf("encode record %q: %w", r.ID, err)
	}
	return RawRecord{ID: r.ID, Kind: r.Kind, ReceivedAt: r.ReceivedAt, Body: b}, nil
}

// JoinBatch is the body of POST /api/v1/audit/batch made of items as
// AppendItem writes them: {"records":[item,item,…]}; the items are not
// parsed again. It fails on no items,
// more than MaxBatchRecords, or (ErrBatchTooLarge) more than MaxBatchBytes.
func JoinBatch(items [][]byte) ([]byte, error) {
	switch n := len(items); {
	case n == 0:
		return nil, errors.New("encode batch: no records")
	case n > MaxBatchRecords:
		return nil, fmt.Errorf("encode batch: %d records, more than %d", n, MaxBatchRecords)
	}
	size := len(`{"records":[]}`) + len(items) - 1
	for _, it := range items {
		size += len(it)
	}
	if size > MaxBatchBytes {
		return nil, fmt.Errorf("encode batch: %d bytes: %w", size, ErrBatchTooLarge)
	}
	out := make([]byte, 0, size)
	out = append(out, `{"records":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, "]}"...), nil
}
