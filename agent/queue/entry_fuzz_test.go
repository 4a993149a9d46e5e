package queue

import (
	"bytes"
	"errors"
	"reflect"
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
	for _, e := range FrozenEntriesV1(f) {
		f.Add(e.Value)
	}

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

// TestDecodeEntry_Version1 decodes the entries an agent before version 2
// stored (testdata/records-entry-v1.jsonl) to the item of the record its
// client sent.
func TestDecodeEntry_Version1(t *testing.T) {
	for _, e := range FrozenEntriesV1(t) {
		id, item, err := decodeEntry(e.Value)
		if err != nil {
			t.Fatalf("%s: %v", e.AuditID, err)
		}
		if id != e.AuditID {
			t.Errorf("ID %q, want %q", id, e.AuditID)
		}
		var it wire.BatchItem
		if err := json.Unmarshal(item, &it); err != nil {
			t.Fatalf("%s: item %s: %v", e.AuditID, item, err)
		}
		got, err := it.Decode(time.Now())
		if err != nil {
			t.Fatalf("%s: item %s: %v", e.AuditID, item, err)
		}
		if want := e.Want(t); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: item %s decodes to\n%+v, want\n%+v", e.AuditID, item, got, want)
		}
	}
}
