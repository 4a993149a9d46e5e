package central

import (
	"context"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func coalescerOnDatabase(t *testing.T) *coalescer {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(context.Background(), dsn))
	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return newCoalescer(db, 5*time.Second, 2, 100, metrics.NewSet())
}

func remediation(id string, confidence float64) wire.Record {
	return wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC(),
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", Confidence: &confidence}}
}

func TestCoalescer_OneFailingRecordDoesNotFailItsBatch(t *testing.T) {
	c := coalescerOnDatabase(t)
	defer c.close()
	good1, bad, good2 := wire.NewID(), wire.NewID(), wire.NewID()
	batch := []*pendingWrite{
		{serviceAccount: "ns/a", record: remediation(good1, 0.5), answer: make(chan writeResult, 1)},
		// Past validation but refused by the table's CHECK: the batch's
		// transaction fails, and each record is then written alone.
		{serviceAccount: "ns/a", record: remediation(bad, 7), answer: make(chan writeResult, 1)},
		{serviceAccount: "ns/a", record: remediation(good2, 0.5), answer: make(chan writeResult, 1)},
	}
	c.flush(batch)
	r1, r2, r3 := <-batch[0].answer, <-batch[1].answer, <-batch[2].answer
	require.NoError(t, r1.err)
	assert.Equal(t, wire.StatusPersisted, r1.status)
	assert.Error(t, r2.err)
	require.NoError(t, r3.err)
	assert.Equal(t, wire.StatusPersisted, r3.status)
}

func TestCoalescer_WriteAfterCloseIsRefusedNotLost(t *testing.T) {
	c := coalescerOnDatabase(t)
	st, err := c.write("ns/a", remediation(wire.NewID(), 0.5))
	require.NoError(t, err)
	assert.Equal(t, wire.StatusPersisted, st)
	c.close()
	done := make(chan error, 1)
	go func() {
		_, err := c.write("ns/a", remediation(wire.NewID(), 0.5))
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, errShuttingDown)
	case <-time.After(5 * time.Second):
		t.Fatal("a write after close hangs")
	}
}
