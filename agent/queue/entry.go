package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

const (
	// entryVersion is written: header, ID length (1 byte), ID, batch item.
	entryVersion = 2
	// entryVersion1 entries hold the JSON of a wire.Record; still read.
	entryVersion1  = 1
	entryHeaderLen = 1 + 4
	keyLen         = 1 + 8
	// entryOverhead bounds what Badger adds per entry to a transaction's
	// size (version suffix, meta, headers).
	entryOverhead = keyLen + 8 + 32
)

var (
	recordPrefix = []byte("q")
	deadPrefix   = []byte("d")
	cursorKey    = []byte("m/cursor")
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// Key is a record's position in the queue: its sequence number, which is
// its receive time in Unix nanoseconds made strictly increasing.
type Key uint64

func (k Key) bytes(prefix []byte) []byte {
	b := make([]byte, keyLen)
	b[0] = prefix[0]
	binary.BigEndian.PutUint64(b[1:], uint64(k))
	return b
}

// MarshalJSON writes k as a JSON string of decimal digits: sequences are
// above 2^53, where a JSON tool that reads numbers as float64 (jq,
// JavaScript) would round them.
func (k Key) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, 22), '"')
	b = strconv.AppendUint(b, uint64(k), 10)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a string of decimal digits, or a number (dead letters
// stored before the seq became a string).
func (k *Key) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("seq: %w", err)
	}
	*k = Key(n)
	return nil
}

func parseKey(b []byte) (Key, bool) {
	if len(b) != keyLen {
		return 0, false
	}
	return Key(binary.BigEndian.Uint64(b[1:])), true
}

// Entry is one buffered record as Read returns it.
type Entry struct {
	Key Key
	ID  string
	// Item is the record as one item of the batch format, ready to send
	// (wire.RawRecord.AppendItem).
	Item []byte
	// Size is the stored size in bytes (what counts against MaxBytes).
	Size int
}

// Decode parses the entry's item (ID, kind, receive time, raw record body)
// without validating the record.
func (e Entry) Decode() (wire.BatchItem, error) {
	var it wire.BatchItem
	if err := json.Unmarshal(e.Item, &it); err != nil {
		return it, fmt.Errorf("entry %d: %w", e.Key, err)
	}
	return it, nil
}

// errCorrupt marks an entry that cannot be decoded.
var errCorrupt = errors.New("corrupt entry")

// encodeEntry builds the stored value of a record (version 2).
func encodeEntry(r *wire.RawRecord) ([]byte, error) {
	if len(r.ID) == 0 || len(r.ID) > wire.MaxIDLen {
		return nil, fmt.Errorf("encode record: ID of %d bytes", len(r.ID))
	}
	v := make([]byte, entryHeaderLen, entryHeaderLen+1+len(r.ID)+len(r.Body)+96)
	v[0] = entryVersion
	v = append(v, byte(len(r.ID)))
	v = append(v, r.ID...)
	v = r.AppendItem(v)
	binary.BigEndian.PutUint32(v[1:5], crc32.Checksum(v[entryHeaderLen:], castagnoli))
	return v, nil
}

// decodeEntry checks a stored value and returns its ID and batch item. The
// record is not re-validated against wire's rules: the checksum proves it is
// what was accepted, and the central validates again (and may reject: dead
// letter). Version 1 entries (an agent before version 2) are converted.
func decodeEntry(v []byte) (id string, item []byte, err error) {
	if len(v) < entryHeaderLen {
		return "", nil, fmt.Errorf("%w: %d bytes, shorter than the header", errCorrupt, len(v))
	}
	payload := v[entryHeaderLen:]
	if want, got := binary.BigEndian.Uint32(v[1:5]), crc32.Checksum(payload, castagnoli); want != got {
		return "", nil, fmt.Errorf("%w: checksum %08x, want %08x", errCorrupt, got, want)
	}
	switch v[0] {
	case entryVersion:
		if len(payload) < 1 || len(payload) < 1+int(payload[0]) {
			return "", nil, fmt.Errorf("%w: truncated ID", errCorrupt)
		}
		n := 1 + int(payload[0])
		id, item = string(payload[1:n]), payload[n:]
		// The checksum vouches for the item; a batch the central cannot
		// parse is split down to the record and dead-lettered anyway.
		if id == "" || len(item) < 2 || item[0] != '{' || item[len(item)-1] != '}' {
			return "", nil, fmt.Errorf("%w: no ID, or the item is not a JSON object", errCorrupt)
		}
		return id, item, nil
	case entryVersion1:
		var r wire.Record
		if err := json.Unmarshal(payload, &r); err != nil {
			// Not the decoder's message: it is logged, and may quote the record.
			return "", nil, fmt.Errorf("%w: version 1 record is not valid JSON", errCorrupt)
		}
		if r.ID == "" || wire.ValidateID(r.ID) != nil {
			return "", nil, fmt.Errorf("%w: record without a valid ID", errCorrupt)
		}
		raw, err := r.Raw()
		if err != nil {
			return "", nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		return r.ID, raw.AppendItem(nil), nil
	default:
		return "", nil, fmt.Errorf("%w: unknown version %d", errCorrupt, v[0])
	}
}
