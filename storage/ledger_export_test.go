package storage_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// exportWithProof exports tr's remediation audits with their ledger proof,
// as the central does: records, proof lines, a checkpoint of the proof's
// head signed with tr.key, the trailer signed with exportKey.
func exportWithProof(t *testing.T, tr *trail, exportKey ed25519.PrivateKey) []byte {
	t.Helper()
	ctx := testContext(t)
	var buf bytes.Buffer
	w := export.NewWriter(&buf)
	until := time.Now().AddDate(0, 3, 0).UTC().Truncate(time.Microsecond) // past the trail's rows, a month ahead
	q := storage.ExportQuery{Kinds: []wire.Kind{wire.KindRemediation}, Until: until}
	batches := map[int64]struct{}{}
	require.NoError(t, tr.db.ExportAudits(ctx, q, func(e *wire.AuditEntry, batch int64) error {
		batches[batch] = struct{}{}
		return w.Record(e)
	}))
	head, err := tr.db.LedgerProof(ctx, batches, func(l ledger.ProofLine) error { return w.Proof(l) })
	require.NoError(t, err)
	c := ledger.Sign(tr.key, head.Seq, head.Hash, time.Now())
	require.NoError(t, w.Proof(ledger.ProofLine{Checkpoint: &c}))
	require.NoError(t, w.Finish(export.Trailer{Kinds: q.Kinds, Until: until, ExportedAt: time.Now().UTC(),
		ExportedBy: "ns/auditor"}, exportKey))
	return buf.Bytes()
}

func TestLedgerProof_AnExportVerifiesOfflineAgainstACheckpoint(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	exportPub, exportKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	data := exportWithProof(t, tr, exportKey)

	trailer, err := export.Verify(bytes.NewReader(data), exportPub)
	require.NoError(t, err)
	assert.Equal(t, export.FormatWithProof, trailer.Format)
	require.Positive(t, trailer.Records)
	assert.Positive(t, trailer.Proofs)
	p, err := ledger.VerifyExportProof(bytes.NewReader(data), tr.key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	assert.EqualValues(t, trailer.Records, p.Records)
	assert.EqualValues(t, 8, p.Entries, "entries 1 to 8: the chain from the genesis to the head")

	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = ledger.VerifyExportProof(bytes.NewReader(data), other)
	assert.ErrorContains(t, err, "signed by key", "another checkpoint key")
}

// An exporter holding the export key, not the checkpoint key, cannot make
// an altered export pass: the proof ties each record to the ledger.
func TestLedgerProof_AlteredRecordsAndProofsAreCaught(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	pub := tr.key.Public().(ed25519.PublicKey)
	_, exportKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	data := exportWithProof(t, tr, exportKey)
	lines := strings.SplitAfter(string(data), "\n")
	rewrite := func(edit func([]string) []string) []byte {
		return []byte(strings.Join(edit(append([]string(nil), lines...)), ""))
	}

	altered := rewrite(func(ls []string) []string {
		ls[0] = strings.Replace(ls[0], `"remediationRequestID":"rr-`, `"remediationRequestID":"rr-X`, 1)
		return ls
	})
	_, err = ledger.VerifyExportProof(bytes.NewReader(altered), pub)
	assert.ErrorContains(t, err, "differs from what entry")

	firstProof := 0
	for i, l := range lines {
		if strings.HasPrefix(l, `{"proof":{"entry"`) {
			firstProof = i
			break
		}
	}
	require.Positive(t, firstProof)
	dropped := rewrite(func(ls []string) []string { return append(ls[:firstProof], ls[firstProof+1:]...) })
	_, err = ledger.VerifyExportProof(bytes.NewReader(dropped), pub)
	assert.ErrorContains(t, err, "where entry")

	noProof := rewrite(func(ls []string) []string {
		out := ls[:0]
		for _, l := range ls {
			if !strings.HasPrefix(l, `{"proof":`) {
				out = append(out, l)
			}
		}
		return out
	})
	_, err = ledger.VerifyExportProof(bytes.NewReader(noProof), pub)
	assert.ErrorContains(t, err, "carries no proof")
}

// A row changed in the database behind the central's back: the central
// exports it as it now is, honestly signed, and the proof says it is not
// what the ledger recorded.
func TestLedgerProof_ARowChangedInTheDatabaseFailsItsExportsProof(t *testing.T) {
	t.Parallel()
	tr := newTrail(t)
	_, err := tr.tamper(t).Exec(testContext(t), `UPDATE remediation_audit SET status = 'rewritten' WHERE id = $1`, tr.recs[2].ID)
	require.NoError(t, err)
	_, exportKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	data := exportWithProof(t, tr, exportKey)
	_, err = ledger.VerifyExportProof(bytes.NewReader(data), tr.key.Public().(ed25519.PublicKey))
	assert.ErrorContains(t, err, tr.recs[2].ID)
	assert.ErrorContains(t, err, "differs from what entry")
}
