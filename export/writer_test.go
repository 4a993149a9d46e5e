package export_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

func TestWriter_RoundTrip(t *testing.T) {
	key := newKey(t)
	es := entries(5, 3)
	data := write(t, es, trailer(), key)

	got, err := export.Verify(bytes.NewReader(data), pubOf(key))
	require.NoError(t, err)
	want := trailer()
	assert.Equal(t, export.Format, got.Format)
	assert.Equal(t, int64(8), got.Records)
	assert.Equal(t, want.Kinds, got.Kinds)
	assert.True(t, want.Since.Equal(*got.Since) && want.Until.Equal(got.Until) && want.ExportedAt.Equal(got.ExportedAt))
	assert.Equal(t, want.ExportedBy, got.ExportedBy)
	assert.Equal(t, export.KeyID(pubOf(key)), got.KeyID)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, got.Digest)

	// Each record line is the record exactly as json.Marshal (the query
	// API's encoding) writes it, and decodes back to it.
	ls := lines(data)
	require.Len(t, ls, 9)
	for i := range es {
		b, err := json.Marshal(&es[i])
		require.NoError(t, err)
		assert.Equal(t, string(b)+"\n", string(ls[i]))
		var back wire.AuditEntry
		require.NoError(t, json.Unmarshal(ls[i], &back))
		again, err := json.Marshal(&back)
		require.NoError(t, err)
		assert.Equal(t, string(b), string(again))
	}
	assert.Regexp(t, `^\{"trailer":\{"format":"kubernaut-audit-export/v1","records":8,"digest":"sha256:[0-9a-f]{64}",`+
		`"kinds":\["remediation","workflow"\],"since":"2026-11-03T09:00:00Z","until":"2026-11-04T09:00:00Z",`+
		`"exportedAt":"2026-11-04T10:00:00Z","exportedBy":"kubernaut-system/auditor","keyID":"[0-9a-f]{16}"\},`+
		`"signature":"[A-Za-z0-9+/]{86}=="\}\n$`, string(ls[8]))
}

func TestWriter_EmptyExportAndOpenRangeVerify(t *testing.T) {
	key := newKey(t)
	tr := trailer()
	tr.Since = nil
	data := write(t, nil, tr, key)
	assert.NotContains(t, string(data), `"since"`, "an open range has no since")
	got, err := export.Verify(bytes.NewReader(data), pubOf(key))
	require.NoError(t, err)
	assert.Zero(t, got.Records)
	assert.Nil(t, got.Since)
	assert.Equal(t, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", got.Digest, "SHA-256 of nothing")
}

// The Writer refuses what Verify would reject, and stays usable: what it
// finishes verifies.
func TestWriter_RefusesRecordsTheFormatDoesNotAllow(t *testing.T) {
	key := newKey(t)
	es := entries(3, 2)
	var b bytes.Buffer
	w := export.NewWriter(&b)
	require.NoError(t, w.Record(&es[0]))
	require.NoError(t, w.Record(&es[1]))

	older := es[0]
	older.AuditID = "audit-older"
	assert.ErrorContains(t, w.Record(&older), "is before line 2's")
	assert.ErrorContains(t, w.Record(&es[1]), "repeats the record of line 2")
	noBody := es[2]
	noBody.Remediation = nil
	assert.ErrorContains(t, w.Record(&noBody), "needs a remediation member")
	badKind := es[2]
	badKind.Kind = "alert"
	assert.ErrorContains(t, w.Record(&badKind), `kind "alert"`)
	noWriter := es[2]
	noWriter.ServiceAccount = ""
	assert.ErrorContains(t, w.Record(&noWriter), "serviceAccount is empty")
	badText := es[2]
	badText.Remediation = ptr(*es[2].Remediation)
	badText.Remediation.AlertName = "\xff"
	assert.ErrorContains(t, w.Record(&badText), "UTF-8")

	require.NoError(t, w.Record(&es[2]))
	require.NoError(t, w.Record(&es[3]))
	require.NoError(t, w.Record(&es[4]))
	assert.ErrorContains(t, w.Record(&es[0]), "a remediation record after workflow records, but the remediation records began at line 1")

	require.NoError(t, w.Finish(trailer(), key))
	got, err := export.Verify(&b, pubOf(key))
	require.NoError(t, err)
	assert.Equal(t, int64(5), got.Records)
}

func TestWriter_FinishRefusesATrailerThatContradictsTheRecords(t *testing.T) {
	key := newKey(t)
	for name, tc := range map[string]struct {
		edit func(*export.Trailer)
		want string
	}{
		"no kinds":           {func(tr *export.Trailer) { tr.Kinds = nil }, "no kinds"},
		"unknown kind":       {func(tr *export.Trailer) { tr.Kinds = []wire.Kind{"alert"} }, `kind "alert"`},
		"a kind twice":       {func(tr *export.Trailer) { tr.Kinds = append(tr.Kinds, wire.KindWorkflow) }, "twice"},
		"no until":           {func(tr *export.Trailer) { tr.Until = time.Time{} }, "no until"},
		"since after until":  {func(tr *export.Trailer) { tr.Since = ptr(tr.Until) }, "is not before until"},
		"no exportedAt":      {func(tr *export.Trailer) { tr.ExportedAt = time.Time{} }, "no exportedAt"},
		"no exportedBy":      {func(tr *export.Trailer) { tr.ExportedBy = "" }, "no exportedBy"},
		"a kind not named":   {func(tr *export.Trailer) { tr.Kinds = tr.Kinds[:1] }, "a workflow record, but the trailer's kinds are [remediation]"},
		"kinds out of order": {func(tr *export.Trailer) { tr.Kinds = []wire.Kind{"workflow", "remediation"} }, "line 4: workflow records come after remediation records, but the trailer's kinds are in the order [workflow remediation]"},
		"record before since": {func(tr *export.Trailer) { tr.Since = ptr(t0.Add(time.Second)) },
			"line 1: occurredAt 2026-11-03T09:00:00Z is before the trailer's since"},
		"record at until": {func(tr *export.Trailer) { tr.Until = t0.Add(2 * time.Second) },
			"line 3: occurredAt 2026-11-03T09:00:02Z is not before the trailer's until"},
	} {
		t.Run(name, func(t *testing.T) {
			es := entries(3, 1)
			var b bytes.Buffer
			w := export.NewWriter(&b)
			for i := range es {
				require.NoError(t, w.Record(&es[i]))
			}
			tr := trailer()
			tc.edit(&tr)
			require.ErrorContains(t, w.Finish(tr, key), tc.want)
			assert.NotContains(t, b.String(), "trailer", "nothing written")
		})
	}
	t.Run("not an Ed25519 key", func(t *testing.T) {
		require.ErrorContains(t, export.NewWriter(&bytes.Buffer{}).Finish(trailer(), key[:10]), "not an Ed25519 private key")
	})
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after == 0 {
		return 0, errors.New("connection reset")
	}
	f.after--
	return len(p), nil
}

func TestWriter_AWriteErrorIsFinal(t *testing.T) {
	es := entries(3, 0)
	w := export.NewWriter(&failingWriter{after: 1})
	require.NoError(t, w.Record(&es[0]))
	require.ErrorContains(t, w.Record(&es[1]), "connection reset")
	require.ErrorContains(t, w.Record(&es[2]), "connection reset")
	require.ErrorContains(t, w.Finish(trailer(), newKey(t)), "connection reset")
}

func TestWriter_TakesNothingAfterFinish(t *testing.T) {
	key := newKey(t)
	es := entries(1, 0)
	w := export.NewWriter(&bytes.Buffer{})
	require.NoError(t, w.Finish(trailer(), key))
	require.ErrorIs(t, w.Record(&es[0]), export.ErrFinished)
	require.ErrorIs(t, w.Finish(trailer(), key), export.ErrFinished)
}
