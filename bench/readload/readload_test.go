package readload_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

func TestMain(m *testing.M) { harness.Main(m) }

// TestMeasure_TheSameReadsThroughStorageAndThroughTheCentral loads a small
// table and measures it both ways: the central's pages, cursors made for
// it included, timelines and export give exactly the rows storage gives,
// and its export arrives signed and verified.
func TestMeasure_TheSameReadsThroughStorageAndThroughTheCentral(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	loaded, err := readload.Load(ctx, readload.LoadConfig{DatabaseURL: dsn, Rows: 4000, Days: 3, ChunkRows: 1000, Seed: 7})
	require.NoError(t, err)
	rows := loaded.RemediationRows + loaded.WorkflowRows
	bins := harness.BuildOnce(t)

	measure := func(via string, plain bool) *readload.Measurement {
		t.Helper()
		m, err := readload.Measure(ctx, readload.MeasureConfig{DatabaseURL: dsn, Samples: 30, Seed: 3, Via: via,
			Central: readload.CentralConfig{BinDir: bins.Dir, PlainExport: plain}})
		require.NoError(t, err, via)
		require.NotNil(t, m.Export, via)
		assert.Equal(t, rows, m.Export.Rows, via)
		assert.Positive(t, m.Export.RSSFirst, via)
		assert.GreaterOrEqual(t, m.Export.RSSSamples, 2, via)
		assert.GreaterOrEqual(t, m.Export.RSSMax, max(m.Export.RSSFirst, m.Export.RSSLast), via)
		assert.LessOrEqual(t, m.Export.RSSMin, min(m.Export.RSSFirst, m.Export.RSSLast), via)
		return m
	}
	direct := measure(readload.ViaStorage, false)
	assert.Contains(t, direct.Via, "storage")
	assert.Nil(t, direct.Export.Trailer, "nothing to verify through storage")

	viaCentral := measure(readload.ViaCentral, false)
	assert.Contains(t, viaCentral.Via, "central http://")
	require.Len(t, viaCentral.Reads, len(direct.Reads))
	for i, want := range direct.Reads {
		got := viaCentral.Reads[i]
		assert.Equal(t, want.Name, got.Name)
		assert.Equal(t, want.N, got.N, want.Name)
		assert.Equal(t, want.Values, got.Values, want.Name)
		assert.Equal(t, want.Rows, got.Rows, "%s: the same reads give the same rows", want.Name)
		assert.Positive(t, got.P50, want.Name)
	}
	assert.Positive(t, direct.Reads[0].Rows, "timelines found their remediations")
	e := viaCentral.Export
	require.NotNil(t, e.Trailer, "verified")
	assert.Equal(t, rows, e.Trailer.Records)
	assert.True(t, e.Gzip)
	assert.Contains(t, e.Process, "central (pid ")
	assert.Contains(t, e.String(), "verified by export.Verify")

	plain := measure(readload.ViaCentral, true)
	assert.False(t, plain.Export.Gzip)
	assert.Greater(t, plain.Export.Received, e.Received, "uncompressed")
}

// TestLoad_MonthlyPartitionsAndEveryKey loads 70 days ending mid-October:
// the history partition ends where the first loaded month starts and holds
// nothing, each month has its partition through the one after now, and
// every row has its key in audit_ids, with its event time.
func TestLoad_MonthlyPartitionsAndEveryKey(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	end := time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)
	loaded, err := readload.Load(ctx, readload.LoadConfig{DatabaseURL: dsn, Rows: 3000, Days: 70, End: end, ChunkRows: 700, Seed: 5})
	require.NoError(t, err)
	rows := loaded.RemediationRows + loaded.WorkflowRows
	assert.GreaterOrEqual(t, rows, int64(3000))
	assert.Equal(t, rows, loaded.Keys)
	assert.Equal(t, end.Add(-70*24*time.Hour), loaded.Start)

	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, c := range []struct {
		kind         wire.Kind
		table, event string
		want         int64
	}{
		{wire.KindRemediation, "remediation_audit", "created_at", loaded.RemediationRows},
		{wire.KindWorkflow, "workflow_audit", "executed_at", loaded.WorkflowRows},
	} {
		parts, err := db.Partitions(ctx, c.kind)
		require.NoError(t, err)
		require.NotEmpty(t, parts)
		assert.Equal(t, time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), parts[0].To, "%s: history ends at the first loaded month", c.kind)
		assert.Equal(t, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), parts[2].From, c.kind)
		assert.True(t, parts[len(parts)-1].From.After(time.Now()), "%s: a partition ahead of now", c.kind)
		var inHistory, keyed int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+parts[0].Name).Scan(&inHistory))
		assert.Zero(t, inHistory, c.kind)
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+c.table+` r JOIN audit_ids k
			ON k.id = r.id AND k.service_account = r.service_account AND k.kind = $1 AND k.event_time = r.`+c.event,
			string(c.kind)).Scan(&keyed))
		assert.Equal(t, c.want, keyed, "%s: every row's key, with its event time", c.kind)
	}
	var keys int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM audit_ids`).Scan(&keys))
	assert.Equal(t, rows, keys)
}

func TestLoad_AtVersion6ThePlainTablesWithoutKeys(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	loaded, err := readload.Load(ctx, readload.LoadConfig{DatabaseURL: dsn, Rows: 1000, Days: 10, Seed: 5, Version: 6})
	require.NoError(t, err)
	assert.Zero(t, loaded.Keys)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var kind string
	var keyTable *string
	var n int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT c.relkind::text, to_regclass('audit_ids')::text,
		(SELECT count(*) FROM remediation_audit) FROM pg_class c WHERE c.oid = 'remediation_audit'::regclass`).Scan(&kind, &keyTable, &n))
	assert.Equal(t, "r", kind, "a plain table")
	assert.Nil(t, keyTable)
	assert.Equal(t, loaded.RemediationRows, n)
}

func TestGenerator_RecordsAreValidAndTheirWritersAreTheFour(t *testing.T) {
	g := readload.NewGenerator(1)
	now := time.Now()
	writers := map[string]int{}
	var recs []wire.Record
	for i := range 2000 {
		g.Remediation(now.Add(time.Duration(i)*time.Second), func(sa string, rec wire.Record) {
			writers[sa]++
			recs = append(recs, rec)
		})
	}
	ids := map[string]bool{}
	for i := range recs {
		require.NoError(t, recs[i].Validate(now), recs[i].ID)
		require.False(t, ids[recs[i].ID], "unique IDs")
		ids[recs[i].ID] = true
	}
	assert.GreaterOrEqual(t, len(writers), 4)
	// Each record points into its own copy of its row: the generator reuses
	// its rows, so a shared one would hold the last remediation's time.
	first := *recs[0].Remediation.CreatedAt
	assert.True(t, first.Equal(now), "the first audit is the Gateway's, at the remediation's start")
}
