package wire_test

import (
	"errors"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func fuzzSeeds(t interface{ Helper() }) [][]byte {
	return [][]byte{
		[]byte(`{"remediationRequestID":"rr-abc123","alertName":"HighMemoryUsage","namespace":"production","cluster":"us-west-2","priority":"P0"}`),
		[]byte(`{"remediationRequestID":"rr","actionType":"restart_pod","confidence":0.87,"reasoning":"r\u00e9\n","createdAt":"2025-10-06T11:00:00.5+02:00","executedAt":"0001-01-01T00:00:00Z","duration":0}`),
		[]byte(`{"remediationRequestID":"rr","targetResource":"ns/deploy/x","status":"failed","durationMs":1500,"duration":1500123456,"errorMessage":"boom"}`),
		[]byte(`{"workflowID":"wf-1","stepName":"drain","stepStatus":"completed","duration":120000003000,"errorMessage":"","executedAt":"2025-10-06T11:59:00Z"}`),
		[]byte(`{"workflowID":"wf-1","stepName":"s","stepStatus":"ok","durationMs":7,"confidence":null}`),
		[]byte(`{"remediationRequestID":"a","remediationRequestID":"b"}`),
		[]byte(`{"remediationRequestID":"rr","confidence":-0}`),
		[]byte(`{"remediationRequestID":"rr"} {}`),
		[]byte(`[]`),
		[]byte(``),
	}
}

// checkBatchRoundTrip encodes records as a batch, decodes it and requires
// the same records back.
func checkBatchRoundTrip(t *testing.T, records []wire.Record) {
	t.Helper()
	body, err := wire.EncodeBatch(records)
	require.NoError(t, err)
	req, err := wire.DecodeBatch(body)
	require.NoError(t, err, "%s", body)
	require.Len(t, req.Records, len(records))
	for i, item := range req.Records {
		got, err := item.Decode(testNow)
		require.NoError(t, err, "%s", body)
		require.Equal(t, records[i], got)
	}
}

func FuzzDecodeAudit(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, workflow bool, body []byte) {
		kind := wire.KindRemediation
		if workflow {
			kind = wire.KindWorkflow
		}
		rec, err := wire.DecodeAudit(kind, body, testNow)
		if err != nil {
			var verr *wire.ValidationError
			require.True(t, errors.As(err, &verr), "%T %v", err, err)
			require.NotEmpty(t, verr.Message)
			require.Equal(t, wire.Record{}, rec)
			return
		}
		require.Equal(t, kind, rec.Kind)

		// The record's own JSON decodes to the same record.
		var again wire.Record
		if workflow {
			require.Nil(t, rec.Remediation)
			out, err := jsonv2.Marshal(rec.Workflow)
			require.NoError(t, err)
			again, err = wire.DecodeAudit(kind, out, testNow)
			require.NoError(t, err, "%s", out)
		} else {
			require.Nil(t, rec.Workflow)
			out, err := jsonv2.Marshal(rec.Remediation)
			require.NoError(t, err)
			again, err = wire.DecodeAudit(kind, out, testNow)
			require.NoError(t, err, "%s", out)
		}
		require.Equal(t, rec, again)

		// With an identity it is a valid stored record, and survives a batch.
		rec.ID = wire.IDForKey("ns/sa", kind, string(body))
		rec.ReceivedAt = testNow
		require.NoError(t, rec.Validate(testNow))
		checkBatchRoundTrip(t, []wire.Record{rec})
	})
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(`{"records":[{"kind":"remediation","record":` + string(s) + `}]}`))
		f.Add([]byte(`{"records":[{"id":"audit-1","kind":"workflow","receivedAt":"2025-10-06T12:00:00Z","record":` + string(s) + `}]}`))
	}
	f.Add([]byte(`{"records":[{"kind":"workflow","record":{"workflowID":"w","stepName":"s","stepStatus":"ok"}},{"kind":"x"},null]}`))
	f.Add([]byte(`{"records":[]}`))
	f.Add([]byte(`{"records":[{"kind":"remediation","record":{"remediationRequestID":"rr"},"extra":1}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := wire.DecodeBatch(body)
		if err != nil {
			var verr *wire.ValidationError
			require.True(t, errors.As(err, &verr), "%T %v", err, err)
			require.Nil(t, req)
			return
		}
		require.NotEmpty(t, req.Records)
		require.LessOrEqual(t, len(req.Records), wire.MaxBatchRecords)
		var accepted []wire.Record
		for _, item := range req.Records {
			rec, err := item.Decode(testNow)
			if err != nil {
				var verr *wire.ValidationError
				require.True(t, errors.As(err, &verr), "%T %v", err, err)
				continue
			}
			require.Equal(t, item.ID, rec.ID)
			if rec.ID == "" {
				rec.ID = wire.NewID()
			}
			require.NoError(t, rec.Validate(testNow.Add(time.Second)))
			accepted = append(accepted, rec)
		}
		if len(accepted) > 0 {
			checkBatchRoundTrip(t, accepted)
		}
	})
}
