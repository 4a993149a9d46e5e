package central

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func coalescerOnDatabase(t *testing.T) (*coalescer, string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	require.NoError(t, storage.Migrate(context.Background(), dsn))
	db, err := storage.Open(context.Background(), storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return newCoalescer(db, 5*time.Second, 2, 100, metrics.NewSet()), dsn
}

func pending(sa string, rec wire.Record) *pendingWrite {
	return &pendingWrite{serviceAccount: sa, record: rec, answer: make(chan writeResult, 1)}
}

// Writes of several service accounts that arrive together commit together:
// one transaction (and WAL flush) for the batch, each row its writer's.
func TestCoalescer_SeveralWritersShareOneTransaction(t *testing.T) {
	c, dsn := coalescerOnDatabase(t)
	defer c.close()
	var batch []*pendingWrite
	var ids []string
	for i := range 8 {
		id := wire.NewID()
		ids = append(ids, id)
		batch = append(batch, pending(fmt.Sprintf("ns/writer-%d", i%4), remediation(id, 0.5)))
	}
	batch = append(batch, pending("ns/writer-1", batch[1].record)) // a retry in the same batch
	c.flush(batch)
	for i, p := range batch {
		r := <-p.answer
		require.NoError(t, r.err)
		want := wire.StatusPersisted
		if i == len(batch)-1 {
			want = wire.StatusDuplicate
		}
		assert.Equal(t, want, r.status, "request %d", i)
	}

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var writers, transactions int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(DISTINCT service_account), count(DISTINCT xmin::text)
		FROM remediation_audit WHERE id = ANY($1)`, ids).Scan(&writers, &transactions))
	assert.Equal(t, 4, writers)
	assert.Equal(t, 1, transactions)
}

func remediation(id string, confidence float64) wire.Record {
	return wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC(),
		Remediation: &wire.RemediationAudit{RemediationRequestID: "rr-1", Confidence: &confidence}}
}

// A record past validation but refused by the table (here a CHECK) fails
// its batch's transaction; then each writer's requests go again on their
// own, so the other writer's still share one transaction, and within the
// failing writer's each record goes alone.
func TestCoalescer_OneFailingRecordDoesNotFailItsBatch(t *testing.T) {
	c, dsn := coalescerOnDatabase(t)
	defer c.close()
	batch := []*pendingWrite{
		pending("ns/a", remediation(wire.NewID(), 0.5)),
		pending("ns/a", remediation(wire.NewID(), 7)),
		pending("ns/b", remediation(wire.NewID(), 0.5)),
		pending("ns/b", remediation(wire.NewID(), 0.5)),
	}
	c.flush(batch)
	for i, p := range batch {
		r := <-p.answer
		if i == 1 {
			assert.Error(t, r.err)
			continue
		}
		require.NoError(t, r.err, "request %d", i)
		assert.Equal(t, wire.StatusPersisted, r.status, "request %d", i)
	}

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var transactions int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(DISTINCT xmin::text) FROM remediation_audit WHERE id = ANY($1)`,
		[]string{batch[2].record.ID, batch[3].record.ID}).Scan(&transactions))
	assert.Equal(t, 1, transactions, "the other writer's batch was not split")
}

func TestCoalescer_WriteAfterCloseIsRefusedNotLost(t *testing.T) {
	c, _ := coalescerOnDatabase(t)
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
