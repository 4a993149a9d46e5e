package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// FuzzDecodeEntry feeds arbitrary stored values to the queue's decoder, as a
// disk that corrupted or truncated an entry would: it must never panic,
// every failure must be errCorrupt (so the entry is quarantined and the
// queue goes on), and whatever decodes must encode back to a decodable entry.
func FuzzDecodeEntry(f *testing.F) {
	rec := wire.Record{ID: "audit-0192f0c2-1b3a-7000-8000-000000000001", Kind: wire.KindRemediation,
		ReceivedAt:  time.Date(2025, 10, 6, 10, 0, 0, 0, time.UTC),
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", AlertName: "HighMemoryUsage"}}
	good, err := encodeEntry(&rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{entryVersion, 0, 0, 0, 0})
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-3] ^= 0x20
	f.Add(flipped)

	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeEntry(v)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decode error is not errCorrupt: %v", err)
			}
			return
		}
		again, err := encodeEntry(&r)
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		if _, err := decodeEntry(again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
	})
}
