package queue

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kubernaut/datastorage/wire"
)

// FrozenEntry is one line of testdata/records-entry-v1.jsonl: a request an
// agent before entry version 2 accepted, and the entry it stored (see
// testdata/README.md).
type FrozenEntry struct {
	Seq            Key            `json:"seq"`
	Kind           wire.Kind      `json:"kind"`
	IdempotencyKey string         `json:"idempotencyKey"`
	Body           jsontext.Value `json:"body"`
	AuditID        string         `json:"auditID"`
	Value          []byte         `json:"value"`
}

// The service account and the stopped clock of the agent that wrote the
// frozen entries.
const FrozenServiceAccount = "kubernaut/gateway-sa"

var FrozenClock = time.Date(2025, 11, 29, 9, 59, 0, 123456789, time.UTC)

// FrozenEntriesV1 reads testdata/records-entry-v1.jsonl.
func FrozenEntriesV1(tb testing.TB) []FrozenEntry {
	tb.Helper()
	b, err := os.ReadFile("testdata/records-entry-v1.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	var out []FrozenEntry
	for line := range bytes.Lines(b) {
		var e FrozenEntry
		if err := json.Unmarshal(line, &e); err != nil {
			tb.Fatalf("records-entry-v1.jsonl line %d: %v", len(out)+1, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		tb.Fatal("records-entry-v1.jsonl holds no entry")
	}
	return out
}

// Want is the record the central must decode from e's entry: the body its
// client sent, under the ID the agent answered, received at FrozenClock.
func (e FrozenEntry) Want(tb testing.TB) wire.Record {
	tb.Helper()
	rec, err := wire.DecodeAudit(e.Kind, e.Body, FrozenClock)
	if err != nil {
		tb.Fatalf("%s: %v", e.AuditID, err)
	}
	rec.ID, rec.ReceivedAt = e.AuditID, FrozenClock
	return rec
}
