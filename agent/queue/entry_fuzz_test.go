package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/wire"
)

// FuzzDecodeEntry feeds arbitrary stored values to the queue's decoder, as a
// disk that corrupted or truncated an entry would: it must never panic,
// every failure must be errCorrupt (so the entry is quarantined and the
// queue goes on), and whatever decodes has an ID and an item that the
// encoder writes back to the same entry.
func FuzzDecodeEntry(f *testing.F) {
	rec := wire.Record{ID: "audit-0192f0c2-1b3a-7000-8000-000000000001", Kind: wire.KindRemediation,
		ReceivedAt:  time.Date(2025, 10, 6, 10, 0, 0, 0, time.UTC),
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", AlertName: "HighMemoryUsage"}}
	raw, err := rec.Raw()
	if err != nil {
		f.Fatal(err)
	}
	good, err := encodeEntry(&raw)
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
	f.Add(encodeV1(f, &rec))

	f.Fuzz(func(t *testing.T, v []byte) {
		id, item, err := decodeEntry(v)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decode error is not errCorrupt: %v", err)
			}
			return
		}
		if id == "" || len(item) == 0 {
			t.Fatalf("decoded entry without ID (%q) or item (%q)", id, item)
		}
		if v[0] == entryVersion && !bytes.Equal(v[entryHeaderLen+1+len(id):], item) {
			t.Fatalf("item %q is not the stored bytes", item)
		}
	})
}

// TestDecodeEntry_Version1 checks that entries written before version 2
// (the JSON of a wire.Record) still decode, to the item version 2 writes.
func TestDecodeEntry_Version1(t *testing.T) {
	rec := wire.Record{ID: "audit-1", Kind: wire.KindWorkflow, ReceivedAt: time.Date(2025, 10, 6, 10, 0, 0, 5, time.UTC),
		Workflow: &wire.WorkflowAudit{WorkflowID: "wf-1", StepName: "scale", StepStatus: "completed"}}
	raw, err := rec.Raw()
	if err != nil {
		t.Fatal(err)
	}
	id, item, err := decodeEntry(encodeV1(t, &rec))
	if err != nil {
		t.Fatal(err)
	}
	if id != rec.ID || string(item) != string(raw.AppendItem(nil)) {
		t.Fatalf("version 1 entry decoded to %q %s, want %q %s", id, item, rec.ID, raw.AppendItem(nil))
	}
}

// encodeV1 is a version 1 entry, as agents before version 2 wrote it.
func encodeV1(tb testing.TB, r *wire.Record) []byte {
	payload, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	v := []byte{entryVersion1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(v[1:5], crc32.Checksum(payload, castagnoli))
	return append(v, payload...)
}
