package notary_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/notary"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(ctx, dsn))
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

func write(t *testing.T, db *storage.DB, n int) {
	t.Helper()
	recs := make([]wire.Record, n)
	for i := range recs {
		recs[i] = wire.Record{ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now(),
			Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1"}}
	}
	_, err := db.WriteBatch(context.Background(), "ns/gateway-sa", recs)
	require.NoError(t, err)
}

// keyFile writes a new Ed25519 key as PKCS#8 PEM and opens it.
func keyFile(t *testing.T) (*export.KeyFile, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "checkpoint.key")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	kf, err := export.OpenKeyFile(path)
	require.NoError(t, err)
	return kf, pub
}

func TestNew_RefusesAFileWithoutAKey(t *testing.T) {
	_, err := notary.New(notary.Config{Store: openDB(t), CheckpointFile: "/tmp/x"})
	assert.ErrorContains(t, err, "signing key")
	_, err = notary.New(notary.Config{})
	assert.Error(t, err)
}

func TestCheckpoint_GoesToTheLogTheFileAndTheDatabase(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	key, pub := keyFile(t)
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	var logs bytes.Buffer
	set := metrics.NewSet()
	now := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC) // nanoseconds: the database keeps microseconds
	n, err := notary.New(notary.Config{Store: db, Key: key, CheckpointFile: file,
		Logger: zerolog.New(&logs), Metrics: set, Now: func() time.Time { return now }})
	require.NoError(t, err)

	write(t, db, 3)
	write(t, db, 2)
	c, err := n.Checkpoint(ctx)
	require.NoError(t, err)
	require.NotNil(t, c)
	assert.EqualValues(t, 2, c.Seq, "sequenced first: two entries after the genesis")
	require.NoError(t, c.Verify(pub))

	f, err := os.Open(file)
	require.NoError(t, err)
	fromFile, err := ledger.ReadCheckpoints(f, pub)
	f.Close()
	require.NoError(t, err)
	assert.Equal(t, []ledger.Checkpoint{*c}, fromFile)
	fromDB, err := db.Checkpoints(ctx, pub)
	require.NoError(t, err)
	require.Len(t, fromDB, 1)
	assert.Equal(t, c.Hash, fromDB[0].Hash)
	assert.Contains(t, logs.String(), `"checkpoint":{"seq":2,`)
	var out bytes.Buffer
	set.WritePrometheus(&out)
	assert.Contains(t, out.String(), "datastorage_ledger_checkpoint_seq 2")
	assert.Contains(t, out.String(), "datastorage_ledger_head_seq 2")

	// The same head is not signed again within the hour; a new one is.
	again, err := n.Checkpoint(ctx)
	require.NoError(t, err)
	assert.Nil(t, again)
	now = now.Add(2 * time.Hour)
	again, err = n.Checkpoint(ctx)
	require.NoError(t, err)
	require.NotNil(t, again, "an hour later, the same head again")

	report, err := db.VerifyLedger(ctx, storage.VerifyOptions{Checkpoints: fromFile})
	require.NoError(t, err)
	assert.True(t, report.OK(), "%v", report.Failures)
	assert.Equal(t, 1, report.Checkpoints)
}

func TestRun_SequencesInTheBackgroundAndSignsOnTheWayOut(t *testing.T) {
	db := openDB(t)
	key, pub := keyFile(t)
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	n, err := notary.New(notary.Config{Store: db, Key: key, CheckpointFile: file,
		SequenceInterval: 20 * time.Millisecond, CheckpointInterval: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	write(t, db, 4)
	require.Eventually(t, func() bool {
		h, err := db.LedgerHead(context.Background())
		return err == nil && h.Seq == 1
	}, 5*time.Second, 20*time.Millisecond, "sequenced without being asked")
	cancel()
	<-done
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	cps, err := ledger.ReadCheckpoints(strings.NewReader(string(data)), pub)
	require.NoError(t, err)
	require.Len(t, cps, 1, "the last checkpoint, on stopping")
	assert.EqualValues(t, 1, cps[0].Seq)
}
