package wire

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
)

// ErrBatchTooLarge is returned by EncodeBatch when the encoded batch would
// exceed MaxBatchBytes: send fewer records per batch.
var ErrBatchTooLarge = errors.New("batch exceeds MaxBatchBytes")

// DecodeBatch decodes the envelope of POST /api/v1/audit/batch:
// {"records":[{"id":…,"kind":…,"receivedAt":…,"record":{…}}, …]}. The
// envelope is strict (unknown or duplicate members, wrong types and trailing
// data reject the whole batch); each item's record body is kept raw and
// checked by BatchItem.Decode, so one bad record is rejected alone. No
// records, more than MaxBatchRecords or a body over MaxBatchBytes is a
// *ValidationError. The result does not alias body.
func DecodeBatch(body []byte) (*BatchRequest, error) {
	if len(body) > MaxBatchBytes {
		return nil, invalid("", "Request body is larger than "+strconv.Itoa(MaxBatchBytes)+" bytes")
	}
	if verr := checkObject(body, "Request body"); verr != nil {
		return nil, verr
	}
	var req BatchRequest
	if err := json.Unmarshal(body, &req, json.RejectUnknownMembers(true)); err != nil {
		return nil, jsonError(err, "Request body")
	}
	switch n := len(req.Records); {
	case n == 0:
		return nil, invalid("records", "Records must contain at least one record")
	case n > MaxBatchRecords:
		return nil, invalid("records", "Records must contain at most "+strconv.Itoa(MaxBatchRecords)+
			" records (got "+strconv.Itoa(n)+")")
	}
	for i := range req.Records {
		req.Records[i].index = i + 1
	}
	return &req, nil
}

// Decode validates one batch item and decodes its record body as
// DecodeAudit does (without DecodeAudit's MaxRecordBytes limit: the batch is
// bounded as a whole). ID is validated when set and stays empty when empty
// (the caller assigns one); ReceivedAt is zero when absent or the zero time.
// Errors are *ValidationError whose Field names the item as in
// "records[3].kind" or "records[3].record.confidence" when the item came
// from DecodeBatch.
func (it BatchItem) Decode(now time.Time) (Record, error) {
	prefix := ""
	if it.index > 0 {
		prefix = "records[" + strconv.Itoa(it.index-1) + "]."
	}
	if it.ID != "" {
		if err := ValidateID(it.ID); err != nil {
			return Record{}, invalid(prefix+"id", err.(*ValidationError).Message)
		}
	}
	kind, err := ParseKind(string(it.Kind))
	if err != nil {
		return Record{}, invalid(prefix+"kind", err.(*ValidationError).Message)
	}
	var receivedAt time.Time
	if t := normTime(it.ReceivedAt); t != nil {
		if verr := checkTime("receivedAt", *t, now); verr != nil {
			return Record{}, invalid(prefix+"receivedAt", verr.Message)
		}
		receivedAt = *t
	}
	if len(it.Record) == 0 {
		return Record{}, invalid(prefix+"record", "Record is required")
	}
	rec, verr := decodeAudit(kind, it.Record, now, "Record")
	if verr != nil {
		field := prefix + "record"
		if verr.Field != "" {
			field += "." + verr.Field
		}
		return Record{}, invalid(field, verr.Message)
	}
	rec.ID = it.ID
	rec.ReceivedAt = receivedAt
	return rec, nil
}

// EncodeBatch is the body of POST /api/v1/audit/batch for records:
// {"records":[{"id":…,"kind":…,"receivedAt":…,"record":{…}}, …]}. For valid
// records (as DecodeAudit or Decode return them) DecodeBatch then Decode on
// the result gives back records equal to the input; times are sent in UTC.
// It fails on an empty or oversized slice (MaxBatchRecords; ErrBatchTooLarge
// past MaxBatchBytes), on an ID that ValidateID refuses, on a record whose
// body does not match its Kind, and on strings that are not valid UTF-8. It
// does not run Validate.
func EncodeBatch(records []Record) ([]byte, error) {
	if n := len(records); n > MaxBatchRecords {
		return nil, fmt.Errorf("encode batch: %d records, more than %d", n, MaxBatchRecords)
	}
	items := make([][]byte, len(records))
	for i := range records {
		r := &records[i]
		if r.ID != "" {
			if err := ValidateID(r.ID); err != nil {
				return nil, fmt.Errorf("encode batch: record %d: %w", i, err)
			}
		}
		raw, err := r.Raw()
		if err != nil {
			return nil, fmt.Errorf("encode batch: record %d: %w", i, err)
		}
		items[i] = raw.AppendItem(nil)
	}
	return JoinBatch(items)
}
