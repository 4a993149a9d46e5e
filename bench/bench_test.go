package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/bench"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

// TestRun_TinyConfigurationMeasuresAndVerifiesEveryScenario runs the whole
// harness for a few seconds so that `make test` keeps it working. It uses
// the TEST_DATABASE_URL cluster (a database from pgtest as the admin
// database) instead of starting its own.
func TestRun_TinyConfigurationMeasuresAndVerifiesEveryScenario(t *testing.T) {
	admin := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{
		DatabaseURL: admin, Controllers: 4, Agents: 2, Duration: 700 * time.Millisecond,
		CopyRows: 500, VectorDuration: 200 * time.Millisecond, DrainTimeout: 20 * time.Second,
	})
	require.NoError(t, err)

	require.Len(t, res.Scenarios, len(bench.AllScenarios))
	for _, s := range res.Scenarios {
		assert.Positive(t, s.Accepted, s.Name)
		if s.Verify != nil {
			assert.Zero(t, s.Verify.Lost, s.Name)
			assert.Zero(t, s.Verify.Duplicated, s.Name)
			assert.Zero(t, s.Verify.KeyMismatch, s.Name)
			assert.Equal(t, int64(s.Verify.Acked), s.Accepted, s.Name)
			require.NotNil(t, s.PersistedPerSec, s.Name)
			assert.Positive(t, *s.PersistedPerSec, s.Name)
		}
	}
	for _, name := range []string{bench.ScenarioNaive, bench.ScenarioDirect, bench.ScenarioDirectNoLedger, bench.ScenarioSidecar,
		bench.ScenarioSidecarNoLedger, bench.ScenarioSidecarReads, bench.ScenarioSidecarHalf} {
		s := scenario(t, res, name)
		require.NotNil(t, s.Verify, "%s is verified", name)
		require.NotNil(t, s.Latency, name)
		assert.NotEmpty(t, s.Procs, name)
	}
	assert.Contains(t, scenario(t, res, bench.ScenarioSidecar).Ratios, "persisted_vs_naive")
	require.NotNil(t, scenario(t, res, bench.ScenarioNaive).Embedded, "the naive design embeds every record")
	// The reader read, as its own service account, and every read was
	// answered 200; the write rate is compared with the sidecar's.
	withReads := scenario(t, res, bench.ScenarioSidecarReads)
	require.NotNil(t, withReads.Reads)
	assert.Positive(t, withReads.Reads.Reads)
	assert.Zero(t, withReads.Reads.Errors, "%v", withReads.Reads.ErrorClasses)
	assert.Positive(t, withReads.Reads.ByType["page"].Reads)
	assert.Contains(t, withReads.Ratios, "accepted_vs_sidecar")
	assert.Nil(t, scenario(t, res, bench.ScenarioSidecar).Reads)
	// Each write path with the ledger is compared with its twin without.
	for _, name := range []string{bench.ScenarioDirect, bench.ScenarioSidecar} {
		s := scenario(t, res, name)
		assert.Contains(t, s.Ratios, "persisted_vs_noledger", name)
		assert.Contains(t, s.Ratios, "p99_vs_noledger", name)
	}
	assert.NotContains(t, scenario(t, res, bench.ScenarioDirectNoLedger).Ratios, "persisted_vs_noledger")

	dir := t.TempDir()
	require.NoError(t, res.WriteJSON(filepath.Join(dir, "results.json")))
	require.NoError(t, res.WriteHTML(filepath.Join(dir, "report.html")))
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), "<svg")
	assert.NotContains(t, string(page), "<script src")
	var table strings.Builder
	res.WriteTable(&table)
	assert.Contains(t, table.String(), "| sidecar ")
	assert.Contains(t, table.String(), "Reads during sidecar-reads")
	assert.Contains(t, table.String(), "sidecar write rate with reads vs without")
	assert.Contains(t, table.String(), "| sidecar-noledger ")
	assert.Contains(t, table.String(), "Ledger cost")
	assert.Contains(t, table.String(), "direct persisted with ledger vs without")
	assert.Contains(t, table.String(), "sidecar p99 latency with ledger vs without")
	assert.Contains(t, string(page), "Ledger cost")
	// The summary is an HTML table, and the CPU each process spent per
	// record is measured and shown.
	assert.Contains(t, string(page), "<h2>Summary</h2><table>")
	assert.Contains(t, string(page), "<h2>CPU per record</h2>")
	side := scenario(t, res, bench.ScenarioSidecar)
	for _, g := range []string{"bench", "agents", "central", "postgres", "server"} {
		assert.Positive(t, side.CPUPerRecordUs[g], g)
	}
	assert.InDelta(t, side.CPUPerRecordUs["agents"]+side.CPUPerRecordUs["central"]+side.CPUPerRecordUs["postgres"],
		side.CPUPerRecordUs["server"], 1e-6)
	assert.Contains(t, table.String(), "server µs")
}

func scenario(t *testing.T, res *bench.Results, name string) *bench.ScenarioResult {
	t.Helper()
	for _, s := range res.Scenarios {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("scenario %s missing", name)
	return nil
}

func TestConfig_RejectsUnknownScenario(t *testing.T) {
	_, err := bench.Run(context.Background(), bench.Config{Scenarios: []string{"warp-drive"}})
	require.ErrorContains(t, err, "unknown scenario")
}
