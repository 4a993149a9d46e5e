package wire_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/wire"
)

// aiAnalysisBody is a realistic AI Analysis record: every field the
// controller sends, with about 1 KB of reasoning.
var aiAnalysisBody = sync.OnceValue(func() []byte {
	reasoning := strings.Repeat("Memory usage of api-server grew linearly from 1.2 GiB to 3.8 GiB over 40 minutes "+
		"while request rate stayed flat; heap profile points at the response cache. ", 7)[:1024]
	b, err := json.Marshal(RemediationAuditRequest{
		RemediationRequestID: "rr-2f9c1e7a-production-highmemoryusage",
		AlertName:            "HighMemoryUsage",
		Namespace:            "production",
		Cluster:              "us-west-2",
		Priority:             "P0",
		ActionType:           "restart_pod",
		Confidence:           0.87,
		Reasoning:            reasoning,
		CreatedAt:            testNow.Add(-time.Second),
	})
	if err != nil {
		panic(err)
	}
	return b
})

// BenchmarkDecodeAudit decodes, normalises and validates one AI Analysis
// record. It reports "x-v1-unmarshal": its time divided by that of plain
// encoding/json v1 unmarshalling of the same body into the spec's client
// struct (no validation), measured in the same run.
func BenchmarkDecodeAudit(b *testing.B) {
	body := aiAnalysisBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.DecodeAudit(wire.KindRemediation, body, testNow); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed()

	// The baseline runs after the timed loop (b.Loop has stopped the timer)
	// for the same number of iterations.
	start := time.Now()
	for range b.N {
		var req RemediationAuditRequest
		if err := json.Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(elapsed)/float64(time.Since(start)), "x-v1-unmarshal")
}

// BenchmarkBatchRoundTrip encodes 500 such records as a batch (the agent's
// side) and decodes every item (the central's side).
func BenchmarkBatchRoundTrip(b *testing.B) {
	rec, err := wire.DecodeAudit(wire.KindRemediation, aiAnalysisBody(), testNow)
	if err != nil {
		b.Fatal(err)
	}
	records := make([]wire.Record, 500)
	for i := range records {
		records[i] = rec
		records[i].ID = wire.NewID()
		records[i].ReceivedAt = testNow
	}
	b.ReportAllocs()
	for b.Loop() {
		body, err := wire.EncodeBatch(records)
		if err != nil {
			b.Fatal(err)
		}
		req, err := wire.DecodeBatch(body)
		if err != nil {
			b.Fatal(err)
		}
		for _, item := range req.Records {
			if _, err := item.Decode(testNow); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(records)), "ns/record")
}
