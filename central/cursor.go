package central

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"
)

// A cursor is where the next page of a query starts: the order position of
// the last row of the page before (event time, writer, ID; unique per
// table), and a fingerprint of the query it was made for, so that a cursor
// is refused for any other query (other filters, range, order or kind) but
// the page size may change between pages. Keyset paging over a unique order
// skips and repeats nothing while writes go on: each page starts strictly
// after the last row returned, wherever new rows land.
//
// It is opaque to clients: base64url of
//
//	version (1) | fingerprint (8) | event time, Unix µs (8, big endian)
//	| uvarint len + writer | uvarint len + ID
//
// It is not signed. It carries nothing a reader could not see in the page
// itself, and a forged one only moves the caller's own query to another
// place in data it may read anyway.
type cursor struct {
	query [8]byte
	at    time.Time // microsecond precision, as stored
	sa    string
	id    string
}

const (
	cursorVersion = 1
	// maxCursorLen bounds what is decoded: writers and IDs are at most a
	// few hundred bytes.
	maxCursorLen = 1024
)

var (
	errCursorMalformed = errors.New("cursor is malformed: pass nextCursor from a previous page unchanged")
	errCursorForeign   = errors.New("cursor belongs to another query: keep the filters, since, until and order of the query that returned it")
)

func (c cursor) encode() string {
	b := make([]byte, 0, 1+8+8+2+len(c.sa)+len(c.id))
	b = append(b, cursorVersion)
	b = append(b, c.query[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.at.UnixMicro()))
	b = binary.AppendUvarint(b, uint64(len(c.sa)))
	b = append(b, c.sa...)
	b = binary.AppendUvarint(b, uint64(len(c.id)))
	b = append(b, c.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses s and checks it was made for the query fingerprinted
// by query.
func decodeCursor(s string, query [8]byte) (cursor, error) {
	if len(s) > maxCursorLen {
		return cursor{}, errCursorMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+8+8 || b[0] != cursorVersion {
		return cursor{}, errCursorMalformed
	}
	var c cursor
	copy(c.query[:], b[1:9])
	c.at = time.UnixMicro(int64(binary.BigEndian.Uint64(b[9:17]))).UTC()
	rest := b[17:]
	var ok bool
	if c.sa, rest, ok = cutString(rest); !ok {
		return cursor{}, errCursorMalformed
	}
	if c.id, rest, ok = cutString(rest); !ok || len(rest) != 0 || c.sa == "" || c.id == "" {
		return cursor{}, errCursorMalformed
	}
	if c.query != query {
		return cursor{}, errCursorForeign
	}
	return c, nil
}

func cutString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// fingerprint identifies a query for its cursors: everything that decides
// which rows it returns and in what order, except the page size.
func (q *readQuery) fingerprint() [8]byte {
	var b bytes.Buffer
	b.WriteString("v1\x00")
	b.WriteString(string(q.kind))
	for _, k := range slices.Sorted(maps.Keys(q.filters)) {
		b.WriteString("\x00" + k + "=" + q.filters[k])
	}
	for _, t := range []time.Time{q.since, q.until} {
		b.WriteString("\x00")
		if !t.IsZero() {
			b.WriteString(strconv.FormatInt(t.UnixMicro(), 10))
		}
	}
	b.WriteString("\x00" + strconv.FormatBool(q.ascending))
	sum := sha256.Sum256(b.Bytes())
	return [8]byte(sum[:8])
}
