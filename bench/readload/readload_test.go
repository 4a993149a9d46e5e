package readload_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
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
