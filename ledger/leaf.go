package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"time"
)

// A leaf is the SHA-256 of one stored row's canonical bytes:
//
//	"datastorage-row-v1\x00" || kind || column...
//
// where kind is 'r' (remediation_audit) or 'w' (workflow_audit), and each
// column of the table's ledger column list (storage's LedgerColumns), in
// order, is a big-endian int32 length followed by the value in PostgreSQL's
// binary format, or the length -1 for NULL. The binary format is what the
// verifier reads back as it is, so a leaf is recomputed from the database
// without decoding a value; the writer builds the same bytes from its Go
// values (text: UTF-8; int4, float8: big-endian; timestamptz: microseconds
// since 2000-01-01 UTC, big-endian int64).

// Leaf is the hash of one row.
type Leaf [sha256.Size]byte

// Row kinds in a leaf.
const (
	KindRemediation byte = 'r'
	KindWorkflow    byte = 'w'
)

const leafDomain = "datastorage-row-v1\x00"

// RowEncoder builds a row's canonical bytes. The zero value is ready; Reset
// reuses its buffer for the next row.
type RowEncoder struct {
	buf []byte
}

// Reset starts the row of kind.
func (e *RowEncoder) Reset(kind byte) {
	e.buf = append(append(e.buf[:0], leafDomain...), kind)
}

// Raw adds a column given in PostgreSQL's binary format; nil is NULL.
func (e *RowEncoder) Raw(v []byte) {
	if v == nil {
		e.buf = binary.BigEndian.AppendUint32(e.buf, math.MaxUint32) // -1
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(v)))
	e.buf = append(e.buf, v...)
}

// Text adds a text column.
func (e *RowEncoder) Text(s string) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(s)))
	e.buf = append(e.buf, s...)
}

// OptionalText adds a text column stored as NULL when empty.
func (e *RowEncoder) OptionalText(s string) {
	if s == "" {
		e.Raw(nil)
		return
	}
	e.Text(s)
}

// Int4 adds an integer column; valid false is NULL.
func (e *RowEncoder) Int4(v int32, valid bool) {
	if !valid {
		e.Raw(nil)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, 4)
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v))
}

// Float8 adds a double precision column; valid false is NULL.
func (e *RowEncoder) Float8(v float64, valid bool) {
	if !valid {
		e.Raw(nil)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, 8)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(v))
}

// Time adds a timestamptz column; valid false is NULL.
func (e *RowEncoder) Time(t time.Time, valid bool) {
	if !valid {
		e.Raw(nil)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, 8)
	e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(Micros(t)))
}

// Sum is the leaf of the row built since Reset.
func (e *RowEncoder) Sum() Leaf { return sha256.Sum256(e.buf) }

// y2k is PostgreSQL's epoch for timestamps, in microseconds since the Unix
// epoch.
const y2k = 946684800 * 1_000_000

// Micros is t as PostgreSQL stores a timestamptz: whole microseconds since
// 2000-01-01 UTC, the nanoseconds truncated (as pgx sends them).
func Micros(t time.Time) int64 {
	return t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - y2k
}

// FromMicros is the inverse of Micros.
func FromMicros(us int64) time.Time {
	us += y2k
	return time.UnixMicro(us).UTC()
}
