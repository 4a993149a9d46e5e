package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

const (
	entryVersion   = 1
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

func parseKey(b []byte) (Key, bool) {
	if len(b) != keyLen {
		return 0, false
	}
	return Key(binary.BigEndian.Uint64(b[1:])), true
}

// Entry is one buffered record as Read returns it.
type Entry struct {
	Key    Key
	Record wire.Record
	// Size is the stored size in bytes (what counts against MaxBytes).
	Size int
}

// errCorrupt marks an entry that cannot be decoded.
var errCorrupt = errors.New("corrupt entry")

// encodeEntry builds the stored value of a record.
func encodeEntry(r *wire.Record) ([]byte, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	v := make([]byte, entryHeaderLen+len(payload))
	v[0] = entryVersion
	binary.BigEndian.PutUint32(v[1:5], crc32.Checksum(payload, castagnoli))
	copy(v[entryHeaderLen:], payload)
	return v, nil
}

// decodeEntry checks and decodes a stored value. The record is not
// re-validated against wire's rules: the checksum proves it is what was
// accepted, and the central validates again (and may reject: dead letter).
func decodeEntry(v []byte) (wire.Record, error) {
	var r wire.Record
	if len(v) < entryHeaderLen {
		return r, fmt.Errorf("%w: %d bytes, shorter than the header", errCorrupt, len(v))
	}
	if v[0] != entryVersion {
		return r, fmt.Errorf("%w: unknown version %d", errCorrupt, v[0])
	}
	payload := v[entryHeaderLen:]
	if want, got := binary.BigEndian.Uint32(v[1:5]), crc32.Checksum(payload, castagnoli); want != got {
		return r, fmt.Errorf("%w: checksum %08x, want %08x", errCorrupt, got, want)
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return r, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if r.ID == "" || (r.Kind != wire.KindRemediation && r.Kind != wire.KindWorkflow) {
		return r, fmt.Errorf("%w: record without ID or kind", errCorrupt)
	}
	return r, nil
}
