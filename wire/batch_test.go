package wire_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

// sampleRecords are records as the agent holds them: decoded from spec-style
// bodies (so in normal form), with IDs and receive times assigned.
func sampleRecords(t *testing.T) []wire.Record {
	t.Helper()
	bodies := []struct {
		kind wire.Kind
		body []byte
	}{
		{wire.KindRemediation, marshalV1(t, RemediationAuditRequest{
			RemediationRequestID: "rr-abc123", AlertName: "HighMemoryUsage", Namespace: "production",
			Cluster: "us-west-2", Priority: "P0", CreatedAt: testNow.Add(-time.Minute),
		})},
		{wire.KindRemediation, marshalV1(t, RemediationAuditRequest{
			RemediationRequestID: "rr-abc123", AlertName: "HighMemoryUsage", ActionType: "restart_pod",
			Confidence: 0.9375, Reasoning: "Memory grows \"linearly\"; restart — résumé <ok> & done\n",
			CreatedAt: testNow.Add(-59 * time.Second).In(time.FixedZone("x", -7*3600)),
		})},
		{wire.KindWorkflow, marshalV1(t, WorkflowAuditRequest{
			WorkflowID: "wf-1", StepName: "scale", StepStatus: "failed", Duration: 1234567891 * time.Nanosecond,
			ErrorMessage: "timeout", ExecutedAt: testNow.Add(-time.Second),
		})},
		{wire.KindWorkflow, []byte(`{"workflowID":"wf-1","stepName":"verify","stepStatus":"ok","durationMs":20}`)},
		{wire.KindRemediation, []byte(`{"remediationRequestID":"rr-min"}`)},
	}
	records := make([]wire.Record, 0, len(bodies))
	for i, b := range bodies {
		rec, err := wire.DecodeAudit(b.kind, b.body, testNow)
		require.NoError(t, err, "sample %d", i)
		if i != 4 { // one record without ID or receive time: both optional in a batch
			rec.ID = wire.NewID()
			rec.ReceivedAt = testNow.Add(time.Duration(i) * time.Millisecond)
		}
		records = append(records, rec)
	}
	return records
}

func decodeAll(t *testing.T, body []byte, now time.Time) []wire.Record {
	t.Helper()
	req, err := wire.DecodeBatch(body)
	require.NoError(t, err)
	out := make([]wire.Record, len(req.Records))
	for i, item := range req.Records {
		rec, err := item.Decode(now)
		require.NoError(t, err, "item %d", i)
		out[i] = rec
	}
	return out
}

func TestEncodeBatch_RoundTripsThroughDecodeBatch(t *testing.T) {
	records := sampleRecords(t)
	body, err := wire.EncodeBatch(records)
	require.NoError(t, err)
	assert.Equal(t, records, decodeAll(t, body, testNow))

	// Records with a local receive time and a monotonic clock reading come
	// back as the same instants, in UTC.
	local := records[4]
	local.ReceivedAt = time.Now().In(time.FixedZone("y", 3600))
	body, err = wire.EncodeBatch([]wire.Record{local})
	require.NoError(t, err)
	got := decodeAll(t, body, time.Now())
	assert.True(t, local.ReceivedAt.Equal(got[0].ReceivedAt))
	assert.Equal(t, time.UTC, got[0].ReceivedAt.Location())
}

func TestEncodeBatch_Shape(t *testing.T) {
	rec := wire.Record{
		ID:         "audit-1",
		Kind:       wire.KindWorkflow,
		ReceivedAt: testNow,
		Workflow: &wire.WorkflowAudit{
			WorkflowID: "wf", StepName: "s", StepStatus: "ok", DurationNanos: ptr(int64(1_500_000_000)),
		},
	}
	body, err := wire.EncodeBatch([]wire.Record{rec, {Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{
		RemediationRequestID: "rr", Confidence: ptr(0.0),
	}}})
	require.NoError(t, err)
	assert.Equal(t, `{"records":[`+
		`{"id":"audit-1","kind":"workflow","receivedAt":"2025-10-06T12:00:00Z","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok","duration":1500000000}},`+
		`{"kind":"remediation","record":{"remediationRequestID":"rr","confidence":0}}]}`, string(body))
}

func TestEncodeBatch_RefusesWhatDecodeBatchWouldReject(t *testing.T) {
	good := sampleRecords(t)[0]
	tooMany := make([]wire.Record, wire.MaxBatchRecords+1)
	for i := range tooMany {
		tooMany[i] = good
	}
	badUTF8 := good
	badUTF8.Remediation = &wire.RemediationAudit{RemediationRequestID: "rr", AlertName: "\xff"}
	big := good
	text := strings.Repeat("😀", wire.MaxTextLen) // 4 bytes each: 256 KiB of text per record
	big.Remediation = &wire.RemediationAudit{RemediationRequestID: "rr", Reasoning: text, ErrorMessage: text}
	bigBatch := make([]wire.Record, wire.MaxBatchBytes/(8*wire.MaxTextLen)+1)
	for i := range bigBatch {
		bigBatch[i] = big
	}
	tests := map[string][]wire.Record{
		"no records":        nil,
		"too many records":  tooMany,
		"kind without body": {{ID: "audit-1", Kind: wire.KindWorkflow, Remediation: good.Remediation}},
		"two bodies": {{ID: "audit-1", Kind: wire.KindRemediation, Remediation: good.Remediation,
			Workflow: &wire.WorkflowAudit{WorkflowID: "w", StepName: "s", StepStatus: "ok"}}},
		"unknown kind":  {{ID: "audit-1", Kind: "other", Remediation: good.Remediation}},
		"invalid UTF-8": {badUTF8},
		"over 16 MiB":   bigBatch,
	}
	for name, records := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := wire.EncodeBatch(records)
			require.Error(t, err)
			assert.Equal(t, name == "over 16 MiB", errors.Is(err, wire.ErrBatchTooLarge), "%v", err)
		})
	}
}

func TestDecodeBatch_RejectsBadEnvelope(t *testing.T) {
	item := `{"kind":"workflow","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"empty body", ``, ""},
		{"not an object", `[` + item + `]`, ""},
		{"null", `null`, ""},
		{"truncated", `{"records":[` + item, ""},
		{"trailing data", `{"records":[` + item + `]}]`, ""},
		{"no records member", `{}`, "records"},
		{"null records", `{"records":null}`, "records"},
		{"empty records", `{"records":[]}`, "records"},
		{"too many records", `{"records":[` + strings.Repeat(item+",", wire.MaxBatchRecords) + item + `]}`, "records"},
		{"records not an array", `{"records":{"0":` + item + `}}`, "records"},
		{"unknown envelope member", `{"records":[` + item + `],"compressed":true}`, "compressed"},
		{"duplicate envelope member", `{"records":[` + item + `],"records":[` + item + `]}`, "records"},
		{"item not an object", `{"records":[` + item + `,"x"]}`, "records[1]"},
		{"unknown item member", `{"records":[` + item + `,{"kind":"workflow","record":{},"retry":1}]}`, "records[1].retry"},
		{"kind not a string", `{"records":[{"kind":1,"record":{}}]}`, "records[0].kind"},
		{"id not a string", `{"records":[{"id":7,"kind":"workflow","record":{}}]}`, "records[0].id"},
		{"receivedAt not a timestamp", `{"records":[{"kind":"workflow","receivedAt":"now","record":{}}]}`, "records[0].receivedAt"},
		{"duplicate member inside a record", `{"records":[` + item + `,{"kind":"workflow","record":{"stepName":"a","stepName":"b"}}]}`, "records[1].record.stepName"},
		{"invalid UTF-8 inside a record", `{"records":[{"kind":"workflow","record":{"stepName":"` + "\xfe" + `"}}]}`, "records[0].record.stepName"},
		{"body over MaxBatchBytes", `{"records":[` + item + `],"pad":"` + strings.Repeat(" ", wire.MaxBatchBytes) + `"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := wire.DecodeBatch([]byte(tc.body))
			requireValidationError(t, err, tc.field)
			assert.Nil(t, req)
		})
	}
}

func TestBatchItemDecode_RejectsOneBadRecordAlone(t *testing.T) {
	items := []string{
		`{"id":"audit-ok-0","kind":"workflow","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"id":"audit bad id","kind":"workflow","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"kind":"workflows","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"kind":"workflow"}`,
		`{"kind":"workflow","record":null}`,
		`{"kind":"workflow","record":"text"}`,
		`{"kind":"remediation","record":{"alertName":"x"}}`,
		`{"kind":"remediation","record":{"remediationRequestID":"rr","confidence":"high"}}`,
		`{"kind":"remediation","record":{"remediationRequestID":"rr","unknown":1}}`,
		`{"kind":"workflow","receivedAt":"1969-07-20T20:17:00Z","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"kind":"workflow","receivedAt":"2999-01-01T00:00:00Z","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"kind":"workflow","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok","duration":-1}}`,
		`{"kind":"workflow","receivedAt":"0001-01-01T00:00:00Z","record":{"workflowID":"wf","stepName":"s","stepStatus":"ok"}}`,
		`{"id":"","kind":"remediation","receivedAt":"2025-10-06T13:00:00+01:00","record":{"remediationRequestID":"rr"}}`,
	}
	wantFields := []string{
		"", "records[1].id", "records[2].kind", "records[3].kind", "records[4].record", "records[5].record",
		"records[6].record", "records[7].record.remediationRequestID", "records[8].record.confidence",
		"records[9].record.unknown", "records[10].receivedAt", "records[11].receivedAt", "records[12].record.duration", "", "",
	}
	req, err := wire.DecodeBatch([]byte(`{"records":[` + strings.Join(items, ",") + `]}`))
	require.NoError(t, err)
	require.Len(t, req.Records, len(items))
	for i, item := range req.Records {
		rec, err := item.Decode(testNow)
		if wantFields[i] == "" {
			require.NoError(t, err, "item %d", i)
			continue
		}
		requireValidationError(t, err, wantFields[i])
		assert.Equal(t, wire.Record{}, rec)
	}

	rec, err := req.Records[0].Decode(testNow)
	require.NoError(t, err)
	assert.Equal(t, "audit-ok-0", rec.ID)
	assert.True(t, rec.ReceivedAt.IsZero(), "absent receivedAt is zero")
	rec, err = req.Records[13].Decode(testNow)
	require.NoError(t, err)
	assert.True(t, rec.ReceivedAt.IsZero(), "the zero time means absent")
	rec, err = req.Records[14].Decode(testNow)
	require.NoError(t, err)
	assert.Empty(t, rec.ID, "an empty ID stays empty")
	assert.Equal(t, testNow, rec.ReceivedAt)
}

func TestBatchItemDecode_WithoutBatchNamesFieldsRelativeToItem(t *testing.T) {
	_, err := wire.BatchItem{Kind: "nope"}.Decode(testNow)
	requireValidationError(t, err, "kind")
	_, err = wire.BatchItem{Kind: wire.KindRemediation, Record: []byte(`{"remediationRequestID":""}`)}.Decode(testNow)
	requireValidationError(t, err, "record.remediationRequestID")
	rec, err := wire.BatchItem{ID: "audit-x", Kind: wire.KindRemediation, Record: []byte(`{"remediationRequestID":"rr"}`)}.Decode(testNow)
	require.NoError(t, err)
	assert.Equal(t, wire.Record{ID: "audit-x", Kind: wire.KindRemediation, Remediation: &wire.RemediationAudit{RemediationRequestID: "rr"}}, rec)
}

func TestBatchItemDecode_SkipsSingleRecordByteLimit(t *testing.T) {
	// 2 × 32768 two-byte characters: valid by the character limits, larger
	// than MaxRecordBytes. A single-record endpoint refuses it; a batch item
	// (which its writer may have re-encoded) is accepted.
	text := strings.Repeat("é", wire.MaxTextLen)
	body := []byte(`{"remediationRequestID":"rr","reasoning":"` + text + `","errorMessage":"` + text + `"}`)
	_, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
	requireValidationError(t, err, "")
	rec, err := wire.BatchItem{Kind: wire.KindRemediation, Record: body}.Decode(testNow)
	require.NoError(t, err)
	assert.Equal(t, text, rec.Remediation.Reasoning)
}

func TestDecodeBatch_DoesNotAliasBody(t *testing.T) {
	body := []byte(`{"records":[{"id":"audit-1","kind":"remediation","record":{"remediationRequestID":"rr-1"}}]}`)
	req, err := wire.DecodeBatch(body)
	require.NoError(t, err)
	for i := range body {
		body[i] = ' '
	}
	rec, err := req.Records[0].Decode(testNow)
	require.NoError(t, err)
	assert.Equal(t, "rr-1", rec.Remediation.RemediationRequestID)
	assert.Equal(t, "audit-1", rec.ID)
}

func TestRawRecord_ItemCarriesTheBodyAsSent(t *testing.T) {
	// Whitespace, escapes and member order survive: the central decodes the
	// client's own bytes, as the single-record endpoint would have.
	body := []byte("{ \"reasoning\" : \"scale\\u0020out\\n\",\n\t\"remediationRequestID\":\"rr-1\", \"confidence\": 0.92 }")
	want, err := wire.DecodeAudit(wire.KindRemediation, body, testNow)
	require.NoError(t, err)
	at := time.Date(2025, 10, 6, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	raw := wire.RawRecord{ID: "audit-1", Kind: wire.KindRemediation, ReceivedAt: at, Body: body}
	batch, err := wire.JoinBatch([][]byte{raw.AppendItem(nil), (&wire.RawRecord{Kind: wire.KindRemediation, Body: body}).AppendItem(nil)})
	require.NoError(t, err)
	req, err := wire.DecodeBatch(batch)
	require.NoError(t, err)
	require.Len(t, req.Records, 2)
	assert.Equal(t, string(body), string(req.Records[0].Record))
	got, err := req.Records[0].Decode(testNow)
	require.NoError(t, err)
	want.ID, want.ReceivedAt = "audit-1", at.UTC()
	assert.Equal(t, want, got)
	got, err = req.Records[1].Decode(testNow)
	require.NoError(t, err)
	assert.Empty(t, got.ID, "no ID: the central assigns one")
	assert.True(t, got.ReceivedAt.IsZero())
}
