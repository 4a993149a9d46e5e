package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Hash is a digest or a chain hash.
type Hash [sha256.Size]byte

// Row is what an entry records of one row it stored.
type Row struct {
	ID        string
	EventTime time.Time // created_at or executed_at, the partition key
	Leaf      Leaf
}

// Prune is an anchor: retention dropped kind's partition [From, To) (From
// zero: from the beginning). Head is the chain's head when it did, the
// newest entry that may have had rows there.
type Prune struct {
	Kind     string // "remediation" or "workflow"
	From, To time.Time
	HeadSeq  int64
	HeadHash Hash
}

// Covers reports whether kind's rows at t were pruned by p.
func (p *Prune) Covers(kind string, t time.Time) bool {
	return p.Kind == kind && (p.From.IsZero() || !t.Before(p.From)) && t.Before(p.To)
}

// Entry is one ledger entry. Writer, WrittenAt, the rows and Prune are its
// content; Digest is their hash; Seq and Hash its place in the chain (zero
// while pending). Batch links the entry to its rows, which carry it; the
// digest need not cover it (a row moved to another batch is a row deleted
// from one entry and inserted in another), and so a writer can send its
// entry before it knows its batch.
type Entry struct {
	Batch       int64
	Writer      string // the service account that stored the rows
	WrittenAt   time.Time
	Remediation []Row // sorted by ID
	Workflow    []Row // sorted by ID
	Prune       *Prune

	Digest Hash
	Seq    int64
	Hash   Hash
}

// SortRows puts the rows in the order the digest covers them.
func (e *Entry) SortRows() {
	byID := func(a, b Row) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(e.Remediation, byID)
	slices.SortFunc(e.Workflow, byID)
}

const (
	entryDomain = "datastorage-ledger-entry-v1\x00"
	chainDomain = "datastorage-ledger-v1\x00"
)

// EncodeRows is the entry's rows as stored (audit_ledger.rows) and hashed:
// for the remediation rows then the workflow rows, their count (uint32),
// then per row its ID (uint32 length, bytes), event time (int64
// microseconds since 2000) and leaf (32 bytes); big-endian.
func (e *Entry) EncodeRows() []byte {
	n := 8
	for _, rows := range [][]Row{e.Remediation, e.Workflow} {
		for i := range rows {
			n += 4 + len(rows[i].ID) + 8 + len(rows[i].Leaf)
		}
	}
	b := make([]byte, 0, n)
	for _, rows := range [][]Row{e.Remediation, e.Workflow} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(rows)))
		for i := range rows {
			b = appendString(b, rows[i].ID)
			b = binary.BigEndian.AppendUint64(b, uint64(Micros(rows[i].EventTime)))
			b = append(b, rows[i].Leaf[:]...)
		}
	}
	return b
}

// DecodeRows sets the entry's rows from EncodeRows' bytes.
func (e *Entry) DecodeRows(b []byte) error {
	if len(b) == 0 { // the genesis entry
		e.Remediation, e.Workflow = nil, nil
		return nil
	}
	for _, rows := range []*[]Row{&e.Remediation, &e.Workflow} {
		if len(b) < 4 {
			return errors.New("rows: truncated count")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b))/(4+8+sha256.Size) {
			return fmt.Errorf("rows: count %d exceeds the bytes", n)
		}
		*rows = make([]Row, n)
		for i := range *rows {
			r := &(*rows)[i]
			if len(b) < 4 {
				return errors.New("rows: truncated ID")
			}
			l := binary.BigEndian.Uint32(b)
			if uint64(len(b)) < 4+uint64(l)+8+sha256.Size {
				return errors.New("rows: truncated row")
			}
			r.ID = string(b[4 : 4+l])
			b = b[4+l:]
			r.EventTime = FromMicros(int64(binary.BigEndian.Uint64(b)))
			copy(r.Leaf[:], b[8:])
			b = b[8+sha256.Size:]
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("rows: %d bytes after the last row", len(b))
	}
	return nil
}

// ComputeDigest hashes the entry's content: writer, time, rows (in the
// order they are: SortRows first when building one) and anchor.
func (e *Entry) ComputeDigest() Hash {
	rows := e.EncodeRows()
	b := make([]byte, 0, 128+len(e.Writer)+len(rows))
	b = append(b, entryDomain...)
	b = appendString(b, e.Writer)
	b = binary.BigEndian.AppendUint64(b, uint64(Micros(e.WrittenAt)))
	b = append(b, rows...)
	if p := e.Prune; p != nil {
		b = append(b, 1)
		b = appendString(b, p.Kind)
		if p.From.IsZero() {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.BigEndian.AppendUint64(b, uint64(Micros(p.From)))
		}
		b = binary.BigEndian.AppendUint64(b, uint64(Micros(p.To)))
		b = binary.BigEndian.AppendUint64(b, uint64(p.HeadSeq))
		b = append(b, p.HeadHash[:]...)
	} else {
		b = append(b, 0)
	}
	return sha256.Sum256(b)
}

// ChainHash is the hash of entry seq with digest, after prev.
func ChainHash(prev Hash, seq int64, digest Hash) Hash {
	var b [len(chainDomain) + 2*sha256.Size + 8]byte
	n := copy(b[:], chainDomain)
	n += copy(b[n:], prev[:])
	binary.BigEndian.PutUint64(b[n:], uint64(seq))
	copy(b[n+8:], digest[:])
	return sha256.Sum256(b[:])
}

// Genesis is the hash of entry 0, which every chain starts from.
var Genesis Hash

// find returns the index of the row with id among rows sorted by ID.
func find(rows []Row, id string) (int, bool) {
	return slices.BinarySearchFunc(rows, id, func(r Row, id string) int { return cmp.Compare(r.ID, id) })
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
